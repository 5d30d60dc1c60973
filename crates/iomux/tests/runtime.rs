//! The coroutine runtime on every backend: spawn, join, abort and panics; join_all; sleep, timeout and
//! yield_now; wakers used from other threads; cooperative budgets.

#[path = "util/mod.rs"]
#[allow(dead_code)] // shared with the other suites, which use the rest
mod util;

#[path = "util/runtime.rs"]
#[macro_use]
mod support;

use std::cell::RefCell;
use std::future::{pending, poll_fn};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use iomux::net::UdpSocket;
use iomux::runtime::{
    BackendKind, Error, join_all, sleep, sleep_until, spawn, timeout, try_spawn, yield_now,
};
use support::runtime;

for_each_backend!(
    spawn_and_join_return_the_output,
    abort_cancels_a_pending_task_and_keeps_a_finished_result,
    a_wake_left_by_a_finished_task_does_not_poll_the_next_task_in_its_slot,
    a_panicking_task_reports_panicked_and_the_runtime_goes_on,
    join_all_returns_outputs_in_order,
    sleep_never_wakes_early,
    thousands_of_timers_fire_and_cancelled_ones_do_not,
    timeout_elapses_and_a_fast_future_wins,
    yield_now_alternates_two_tasks,
    a_waker_from_another_thread_wakes_a_parked_runtime,
    many_wakes_from_many_threads_are_all_seen,
    dropping_the_runtime_cancels_its_tasks,
    a_task_on_an_always_ready_socket_cannot_starve_the_others,
    a_wait_reporting_hundreds_of_events_wakes_every_task,
    tasks_left_by_block_on_run_in_the_next_one,
    busy_tasks_do_not_starve_timers,
);

fn spawn_and_join_return_the_output(kind: BackendKind) {
    let runtime = runtime(kind);
    assert_eq!(runtime.backend(), kind);
    let output = runtime.block_on(async {
        let inner = spawn(async { spawn(async { 40 }).await.unwrap() + 2 });
        let text = spawn(async { String::from("done") });
        (inner.await.unwrap(), text.await.unwrap())
    });
    assert_eq!(output, (42, "done".to_owned()));
    assert_eq!(runtime.task_count(), 0);
}

fn abort_cancels_a_pending_task_and_keeps_a_finished_result(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let dropped = Rc::new(AtomicBool::new(false));
        struct SetOnDrop(Rc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = SetOnDrop(Rc::clone(&dropped));
        let stuck = spawn(async move {
            let _guard = guard;
            pending::<()>().await;
        });
        yield_now().await; // let it start
        assert!(!stuck.is_finished());
        let id = stuck.id();
        stuck.abort();
        match stuck.await {
            Err(Error::Cancelled { task }) => assert_eq!(task, id),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert!(
            dropped.load(Ordering::SeqCst),
            "the aborted future was dropped"
        );

        // Aborted before it ever ran.
        let never = spawn(async { 1 });
        never.abort();
        assert!(matches!(never.await, Err(Error::Cancelled { .. })));

        // Aborting a finished task keeps its result.
        let quick = spawn(async { 7 });
        while !quick.is_finished() {
            yield_now().await;
        }
        quick.abort();
        assert_eq!(quick.await.unwrap(), 7);
    });
    assert_eq!(runtime.task_count(), 0);
}

/// A task that aborts itself and then finishes in the same poll leaves a wake queued behind it; the
/// next task spawned into its slot must not be polled for it.
fn a_wake_left_by_a_finished_task_does_not_poll_the_next_task_in_its_slot(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let own_handle = Rc::new(RefCell::new(None));
        let inside = Rc::clone(&own_handle);
        let first = spawn(async move {
            if let Some(handle) = inside.borrow().as_ref() {
                iomux::runtime::JoinHandle::<()>::abort(handle);
            }
        });
        *own_handle.borrow_mut() = Some(first);
        yield_now().await; // `first` runs, queues itself again and finishes
        let polls = Rc::new(AtomicUsize::new(0));
        let counted = Rc::clone(&polls);
        let second = spawn(poll_fn(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            Poll::<()>::Pending
        }));
        yield_now().await;
        yield_now().await;
        assert_eq!(
            polls.load(Ordering::Relaxed),
            1,
            "a task nobody woke is polled once"
        );
        second.abort();
        assert!(matches!(second.await, Err(Error::Cancelled { .. })));
    });
}

fn a_panicking_task_reports_panicked_and_the_runtime_goes_on(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let bad = spawn(async {
            sleep(Duration::from_millis(1)).await;
            panic!("deliberate panic in a task");
        });
        let good = spawn(async {
            sleep(Duration::from_millis(5)).await;
            "still running"
        });
        match bad.await {
            Err(Error::Panicked { message, .. }) => {
                assert_eq!(message, "deliberate panic in a task")
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(good.await.unwrap(), "still running");
        let formatted = spawn(async { panic!("value {}", 5) }).await.unwrap_err();
        assert!(
            formatted.to_string().ends_with("panicked: value 5"),
            "{formatted}"
        );
    });
    // The runtime is still usable.
    assert_eq!(
        runtime.block_on(async { spawn(async { 3 }).await.unwrap() }),
        3
    );
}

fn join_all_returns_outputs_in_order(kind: BackendKind) {
    let runtime = runtime(kind);
    let outputs = runtime.block_on(async {
        // Later tasks finish first; the order of the outputs is still the order given.
        let handles = (0..50u64).map(|n| {
            spawn(async move {
                sleep(Duration::from_millis(50 - n)).await;
                n
            })
        });
        join_all(handles).await
    });
    let outputs: Vec<u64> = outputs.into_iter().map(Result::unwrap).collect();
    assert_eq!(outputs, (0..50).collect::<Vec<_>>());
    assert!(
        runtime
            .block_on(join_all(Vec::<std::future::Ready<()>>::new()))
            .is_empty()
    );
}

fn sleep_never_wakes_early(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        for asked in [
            Duration::ZERO,
            Duration::from_micros(300),
            Duration::from_millis(1),
            Duration::from_micros(1500),
            Duration::from_millis(20),
        ] {
            let start = Instant::now();
            sleep(asked).await;
            let elapsed = start.elapsed();
            assert!(elapsed >= asked, "slept {elapsed:?}, asked {asked:?}");
        }
        let deadline = Instant::now() + Duration::from_millis(7);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        // A deadline in the past is ready at once.
        sleep_until(Instant::now() - Duration::from_secs(1)).await;
    });
    // Concurrent sleeps, each checked against its own deadline.
    runtime.block_on(async {
        let handles = (0..20u64).map(|n| {
            spawn(async move {
                let asked = Duration::from_micros(700 * n);
                let start = Instant::now();
                sleep(asked).await;
                (start.elapsed(), asked)
            })
        });
        for result in join_all(handles).await {
            let (elapsed, asked) = result.unwrap();
            assert!(elapsed >= asked, "slept {elapsed:?}, asked {asked:?}");
        }
    });
}

fn thousands_of_timers_fire_and_cancelled_ones_do_not(kind: BackendKind) {
    let runtime = runtime(kind);
    let fired = Rc::new(RefCell::new(0));
    runtime.block_on(async {
        let mut handles = Vec::new();
        for n in 0..3000u64 {
            let fired = Rc::clone(&fired);
            handles.push(spawn(async move {
                sleep(Duration::from_millis(n % 40)).await;
                *fired.borrow_mut() += 1;
            }));
        }
        // Timeouts that never fire: their sleeps are cancelled when the fast futures win.
        for _ in 0..3000 {
            assert_eq!(timeout(Duration::from_secs(3600), async { 1 }).await, Ok(1));
        }
        // Sleeps dropped before their deadline never wake their task.
        let cancelled = spawn(async {
            let _ = timeout(Duration::from_millis(1), sleep(Duration::from_secs(3600))).await;
            "short timeout won"
        });
        assert_eq!(cancelled.await.unwrap(), "short timeout won");
        for handle in join_all(handles).await {
            handle.unwrap();
        }
    });
    assert_eq!(*fired.borrow(), 3000);
}

fn timeout_elapses_and_a_fast_future_wins(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let asked = Duration::from_millis(15);
        let start = Instant::now();
        let elapsed = timeout(asked, pending::<()>()).await.unwrap_err();
        assert!(start.elapsed() >= asked);
        assert_eq!(elapsed.after, asked);
        let error: Error = elapsed.into();
        assert!(matches!(error, Error::Elapsed(_)));
        let io: std::io::Error = error.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

        let quick = timeout(Duration::from_secs(10), async {
            sleep(Duration::from_millis(2)).await;
            "quick"
        });
        assert_eq!(quick.await, Ok("quick"));
        // Ready at once wins even a zero timeout.
        assert_eq!(timeout(Duration::ZERO, async { 5 }).await, Ok(5));
    });
}

fn yield_now_alternates_two_tasks(kind: BackendKind) {
    let runtime = runtime(kind);
    let log = Rc::new(RefCell::new(Vec::new()));
    runtime.block_on(async {
        let tasks = ["a", "b"].map(|name| {
            let log = Rc::clone(&log);
            spawn(async move {
                for _ in 0..5 {
                    log.borrow_mut().push(name);
                    yield_now().await;
                }
            })
        });
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(
        *log.borrow(),
        ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]
    );
}

fn a_waker_from_another_thread_wakes_a_parked_runtime(kind: BackendKind) {
    let runtime = runtime(kind);
    let flag = Arc::new(AtomicBool::new(false));
    let (send_waker, receive_waker) = mpsc::channel::<std::task::Waker>();
    let remote_flag = Arc::clone(&flag);
    let other = thread::spawn(move || {
        let waker = receive_waker.recv().unwrap();
        // The runtime has nothing else to do and no timer: it is blocked in its selector.
        thread::sleep(Duration::from_millis(30));
        remote_flag.store(true, Ordering::SeqCst);
        waker.wake();
    });
    let start = Instant::now();
    let mut sent = Some(send_waker);
    runtime.block_on(poll_fn(|cx| {
        if flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if let Some(send) = sent.take() {
            send.send(cx.waker().clone()).unwrap();
        }
        Poll::Pending
    }));
    assert!(start.elapsed() >= Duration::from_millis(30));
    other.join().unwrap();
    // Also a spawned task's waker, not only block_on's.
    let (send_waker, receive_waker) = mpsc::channel::<std::task::Waker>();
    let flag = Arc::new(AtomicBool::new(false));
    let task_flag = Arc::clone(&flag);
    let other = thread::spawn(move || {
        let waker = receive_waker.recv().unwrap();
        thread::sleep(Duration::from_millis(10));
        flag.store(true, Ordering::SeqCst);
        waker.wake();
    });
    runtime.block_on(async move {
        let mut sent = Some(send_waker);
        let task = spawn(poll_fn(move |cx| {
            if task_flag.load(Ordering::SeqCst) {
                return Poll::Ready("woken");
            }
            if let Some(send) = sent.take() {
                send.send(cx.waker().clone()).unwrap();
            }
            Poll::Pending
        }));
        assert_eq!(task.await.unwrap(), "woken");
    });
    other.join().unwrap();
}

fn many_wakes_from_many_threads_are_all_seen(kind: BackendKind) {
    let runtime = runtime(kind);
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let progress = Arc::new(AtomicUsize::new(0));
    let (send_waker, receive_waker) = mpsc::channel::<std::task::Waker>();
    let mut threads = Vec::new();
    let wakers = Arc::new(std::sync::Mutex::new(receive_waker));
    for _ in 0..THREADS {
        let progress = Arc::clone(&progress);
        let wakers = Arc::clone(&wakers);
        threads.push(thread::spawn(move || {
            for _ in 0..ROUNDS {
                let waker = wakers.lock().unwrap().recv().unwrap();
                progress.fetch_add(1, Ordering::SeqCst);
                waker.wake();
            }
        }));
    }
    // Each poll hands one waker out and waits for a thread to use it: every wake must get through.
    let mut handed_out = 0;
    runtime.block_on(poll_fn(|cx| {
        if progress.load(Ordering::SeqCst) == THREADS * ROUNDS {
            return Poll::Ready(());
        }
        if handed_out == progress.load(Ordering::SeqCst) && handed_out < THREADS * ROUNDS {
            send_waker.send(cx.waker().clone()).unwrap();
            handed_out += 1;
        }
        Poll::Pending
    }));
    for thread in threads {
        thread.join().unwrap();
    }
}

fn dropping_the_runtime_cancels_its_tasks(kind: BackendKind) {
    let runtime = runtime(kind);
    let handle = runtime.spawn(pending::<u8>());
    let finished = runtime.spawn(async { 9 });
    runtime.block_on(yield_now());
    drop(runtime);
    let result = futures_lite::future::block_on(handle);
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert_eq!(futures_lite::future::block_on(finished).unwrap(), 9);
    // Outside any runtime, spawning is refused with a typed error.
    assert!(matches!(
        try_spawn(async {}),
        Err(Error::NoRuntime { operation: "spawn" })
    ));
}

/// One wait reports more events than the reactor dispatches at a time: every waiting task is woken
/// all the same.
fn a_wait_reporting_hundreds_of_events_wakes_every_task(kind: BackendKind) {
    const SOCKETS: usize = 300;
    let runtime = runtime(kind);
    runtime.block_on(async {
        let sockets: Vec<UdpSocket> = (0..SOCKETS)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addresses: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                spawn(async move {
                    let mut buffer = [0; 16];
                    let (read, _) = socket.recv_from(&mut buffer).await.unwrap();
                    buffer[..read].to_vec()
                })
            })
            .collect();
        yield_now().await; // every task has run and waits on its socket
        // Sent from outside the runtime without yielding: all are readable by its next wait.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for (n, address) in addresses.iter().enumerate() {
            sender.send_to(format!("{n}").as_bytes(), address).unwrap();
        }
        let received = join_all(tasks).await;
        for (n, datagram) in received.into_iter().enumerate() {
            assert_eq!(datagram.unwrap(), format!("{n}").into_bytes());
        }
    });
}

fn a_task_on_an_always_ready_socket_cannot_starve_the_others(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = sink.local_addr().unwrap();
        let sent = Rc::new(RefCell::new(0u64));
        let counter = Rc::clone(&sent);
        // Sending UDP never blocks (a full receiver drops datagrams): without a budget this task
        // would never return to the executor.
        let flood = spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            loop {
                socket.send_to(b"x", target).await.unwrap();
                *counter.borrow_mut() += 1;
            }
        });
        let start = Instant::now();
        sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        flood.abort();
        assert!(matches!(flood.await, Err(Error::Cancelled { .. })));
        assert!(*sent.borrow() > 0);
        drop(sink);
    });
}

fn tasks_left_by_block_on_run_in_the_next_one(kind: BackendKind) {
    let runtime = runtime(kind);
    let counter = Rc::new(RefCell::new(0));
    let task_counter = Rc::clone(&counter);
    let task = runtime.spawn(async move {
        for _ in 0..10 {
            *task_counter.borrow_mut() += 1;
            yield_now().await;
        }
    });
    // Returns while the task is half done.
    runtime.block_on(async {
        yield_now().await;
        yield_now().await;
    });
    let halfway = *counter.borrow();
    assert!((1..10).contains(&halfway), "{halfway}");
    runtime.block_on(task).unwrap();
    assert_eq!(*counter.borrow(), 10);
}

fn busy_tasks_do_not_starve_timers(kind: BackendKind) {
    let runtime = runtime(kind);
    // Something is always ready to run — the main future alone, then the main future and a task,
    // both yielding in a loop — yet the timers must still be looked at now and then.
    for with_spinner in [false, true] {
        let done = Rc::new(AtomicBool::new(false));
        let timer_done = Rc::clone(&done);
        let spinner_done = Rc::clone(&done);
        runtime.block_on(async move {
            spawn(async move {
                sleep(Duration::from_millis(10)).await;
                timer_done.store(true, Ordering::SeqCst);
            });
            let spinner = with_spinner.then(|| {
                spawn(async move {
                    while !spinner_done.load(Ordering::SeqCst) {
                        yield_now().await;
                    }
                })
            });
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                yield_now().await;
            }
            assert!(start.elapsed() >= Duration::from_millis(10));
            if let Some(spinner) = spinner {
                spinner.await.unwrap();
            }
        });
    }
}

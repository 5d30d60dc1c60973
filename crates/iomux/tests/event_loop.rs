//! The callback event loop (layer 2) over real sockets, every case on every backend: TCP echo through
//! callbacks, sources registering and unregistering sources, `call_soon` order, timers, a handler type
//! with source timeouts, the cross-thread handle and the ways a run ends. Signals have their own test
//! binary (`event_loop_signals.rs`), as they reach the whole process.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[path = "util/mod.rs"]
#[allow(dead_code)] // shared with the conformance suite, which uses the rest
mod util;

use util::{HANG_GUARD, socketpair, tcp_listener};

use iomux::event_loop::{
    BackendKind, Error, EventLoop, Exit, Handle, Handler, Interest, Ready, TimeoutHandler, Timer,
    Trigger,
};

/// Turns each `fn(BackendKind)` case into one `#[test]` per backend, named `<case>::<backend>`.
macro_rules! for_each_backend {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use iomux::event_loop::BackendKind;

                #[test]
                fn select() {
                    super::$case(BackendKind::Select);
                }

                #[test]
                fn poll() {
                    super::$case(BackendKind::Poll);
                }

                #[cfg(target_os = "linux")]
                #[test]
                fn epoll() {
                    super::$case(BackendKind::Epoll);
                }
            }
        )*
    };
}

for_each_backend!(
    echo_roundtrip_over_tcp,
    callbacks_register_and_unregister_other_sources,
    call_soon_runs_first_in_first_out,
    timers_fire_in_deadline_order_and_never_early,
    cancel_and_reset,
    ten_thousand_timers_stay_bounded,
    handle_queues_callbacks_and_stops_from_another_thread,
    handle_after_drop_is_closed,
    run_until_returns_no_earlier_than_the_deadline,
    run_once_waits_for_its_timeout,
    running_again_from_a_callback_is_refused,
    handler_type_with_source_timeouts,
    panicking_handler_is_unregistered,
    trigger_modes_match_the_backend,
);

/// Stops the loop from another thread after [`HANG_GUARD`], so a broken case fails instead of hanging:
/// cases that expect another exit then see `Exit::Stopped`.
fn hang_guard<H: 'static>(handle: Handle<H>) {
    thread::spawn(move || {
        thread::sleep(HANG_GUARD);
        let _ = handle.stop();
    });
}

fn event_loop(kind: BackendKind) -> EventLoop {
    let event_loop = EventLoop::with_backend(kind).unwrap();
    assert_eq!(event_loop.backend(), kind);
    event_loop
}

/// One echo connection's state: what was read and not yet written back (bounded, so that a client
/// that does not read stops being read), and whether the client has finished sending.
#[derive(Default)]
struct Echo {
    pending: Vec<u8>,
    eof: bool,
}

const ECHO_LIMIT: usize = 256 * 1024;

fn echo(event_loop: &mut EventLoop, stream: &mut TcpStream, ready: Ready, state: &mut Echo) {
    let fd = stream.as_raw_fd();
    let mut failed = ready.is_error();
    if !state.eof && (ready.is_readable() || ready.is_read_closed()) {
        let mut buffer = [0u8; 16 * 1024];
        while state.pending.len() < ECHO_LIMIT {
            match stream.read(&mut buffer) {
                Ok(0) => {
                    state.eof = true;
                    break;
                }
                Ok(n) => state.pending.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
    }
    while !failed && !state.pending.is_empty() {
        match stream.write(&state.pending) {
            Ok(n) => {
                state.pending.drain(..n);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => failed = true,
        }
    }
    if failed || state.eof && state.pending.is_empty() {
        // Unregistering from its own callback drops the callback, closing the stream afterwards.
        assert!(event_loop.unregister(fd).unwrap().is_none());
        return;
    }
    // Read while there is room, write while there is output: the seeds' read/write separation.
    let can_read = !state.eof && state.pending.len() < ECHO_LIMIT;
    let interest = match (can_read, state.pending.is_empty()) {
        (true, true) => Interest::READ,
        (true, false) => Interest::READ | Interest::WRITE,
        (false, _) => Interest::WRITE,
    };
    event_loop.modify(fd, interest).unwrap();
}

fn echo_roundtrip_over_tcp(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    hang_guard(event_loop.handle());
    let listener = tcp_listener();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let counter = Rc::clone(&accepted);
    let listener_fd = event_loop
        .register(listener, Interest::READ, move |event_loop, listener, _| {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true).unwrap();
                        let mut state = Echo::default();
                        event_loop
                            .register(stream, Interest::READ, move |event_loop, stream, ready| {
                                echo(event_loop, stream, ready, &mut state)
                            })
                            .unwrap();
                        counter.set(counter.get() + 1);
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => panic!("accept failed: {error}"),
                }
            }
            if counter.get() == 2 {
                // Both clients are in: the listener unregisters itself, and the loop ends (idle)
                // once both connections are closed.
                assert!(
                    event_loop
                        .unregister(listener.as_raw_fd())
                        .unwrap()
                        .is_none()
                );
            }
        })
        .unwrap();
    assert!(event_loop.is_registered(listener_fd));

    // Two clients: one sends 4 MiB while reading concurrently (more than the echo's bound, so the
    // server must stop reading and resume), one sends a few small messages.
    let big = thread::spawn(move || {
        let stream = TcpStream::connect(address).unwrap();
        let payload: Vec<u8> = (0..4 * 1024 * 1024u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut writer = stream.try_clone().unwrap();
        let sent = payload.clone();
        let writing = thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut echoed = Vec::new();
        (&stream).read_to_end(&mut echoed).unwrap();
        writing.join().unwrap();
        assert!(echoed == payload, "the echo differs from what was sent");
    });
    let small = thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        for message in [&b"hello"[..], b"\x00\xff binary \r\n", b"x"] {
            stream.write_all(message).unwrap();
            let mut reply = vec![0; message.len()];
            stream.read_exact(&mut reply).unwrap();
            assert_eq!(reply, message);
        }
        stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    big.join().unwrap();
    small.join().unwrap();
    assert_eq!(accepted.get(), 2);
    assert_eq!(event_loop.sources_len(), 0);
}

/// Sets a flag when dropped: proves a callback (and what it owns) was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn callbacks_register_and_unregister_other_sources(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    hang_guard(event_loop.handle());
    let (trigger, mut trigger_peer) = socketpair();
    let (later, mut later_peer) = socketpair();
    let (victim, _victim_peer) = socketpair();
    let log = Rc::new(RefCell::new(Vec::new()));

    let victim_dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(Rc::clone(&victim_dropped));
    let victim_fd = event_loop
        .register(victim, Interest::READ, move |_, _, _| {
            let _keep = &flag;
            panic!("the victim is never ready");
        })
        .unwrap();

    // `trigger` registers `later` and unregisters `victim` and itself.
    let later_slot = Rc::new(RefCell::new(Some(later)));
    let (log_trigger, log_later) = (Rc::clone(&log), Rc::clone(&log));
    let trigger_fd = event_loop
        .register(
            trigger,
            Interest::READ,
            move |event_loop, trigger, ready| {
                assert!(ready.is_readable());
                let mut byte = [0];
                trigger.read_exact(&mut byte).unwrap();
                log_trigger.borrow_mut().push("trigger");
                let later = later_slot.borrow_mut().take().expect("trigger runs once");
                let log = Rc::clone(&log_later);
                let later_fd = event_loop
                    .register(later, Interest::READ, move |event_loop, later, _| {
                        let mut byte = [0];
                        later.read_exact(&mut byte).unwrap();
                        log.borrow_mut().push("later");
                        event_loop.unregister(later.as_raw_fd()).unwrap();
                    })
                    .unwrap();
                assert!(event_loop.is_registered(later_fd));
                // Another source's handler is handed back.
                assert!(event_loop.unregister(victim_fd).unwrap().is_some());
                assert!(!event_loop.is_registered(victim_fd));
                // Itself: dropped once this call returns.
                assert!(
                    event_loop
                        .unregister(trigger.as_raw_fd())
                        .unwrap()
                        .is_none()
                );
                assert!(event_loop.unregister(trigger.as_raw_fd()).is_err());
            },
        )
        .unwrap();
    assert_eq!(event_loop.sources_len(), 2);

    trigger_peer.write_all(b"t").unwrap();
    later_peer.write_all(b"l").unwrap();
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    assert_eq!(*log.borrow(), ["trigger", "later"]);
    assert!(victim_dropped.get());
    assert!(!event_loop.is_registered(trigger_fd));
    assert_eq!(event_loop.sources_len(), 0);
    // The trigger's stream was closed when its callback was dropped.
    let mut rest = Vec::new();
    assert_eq!(trigger_peer.read_to_end(&mut rest).unwrap(), 0);

    // Errors are typed: a second registration of an fd, and fds the loop does not know.
    let (shared, _peer) = socketpair();
    let shared = Rc::new(shared);
    let fd = event_loop
        .register(Rc::clone(&shared), Interest::READ, |_, _, _| {})
        .unwrap();
    let twice = event_loop
        .register(Rc::clone(&shared), Interest::READ, |_, _, _| {})
        .unwrap_err();
    assert!(matches!(twice, Error::Selector(_)));
    assert_eq!(io::Error::from(twice).kind(), ErrorKind::AlreadyExists);
    assert_eq!(event_loop.sources_len(), 1);
    assert!(matches!(
        event_loop.modify(999_999, Interest::READ),
        Err(Error::Selector(_))
    ));
    let not_registered = event_loop.unregister(999_999).unwrap_err();
    assert_eq!(io::Error::from(not_registered).kind(), ErrorKind::NotFound);
    assert!(event_loop.unregister(fd).unwrap().is_some());
    assert_eq!(Rc::strong_count(&shared), 1);
}

fn call_soon_runs_first_in_first_out(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..100 {
        let order = Rc::clone(&order);
        event_loop.call_soon(move |event_loop| {
            order.borrow_mut().push(i);
            // Queued from a callback: runs after every callback queued before it.
            let order = Rc::clone(&order);
            event_loop.call_soon(move |_| order.borrow_mut().push(100 + i));
        });
    }
    assert_eq!(event_loop.soon_len(), 100);
    // The first round runs exactly the 100 queued before it.
    assert_eq!(event_loop.run_once(Some(Duration::ZERO)).unwrap(), 100);
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    assert_eq!(*order.borrow(), (0..200).collect::<Vec<_>>());
}

fn timers_fire_in_deadline_order_and_never_early(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    hang_guard(event_loop.handle());
    let fired = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let delays_ms = [50u64, 10, 30, 0, 20, 10, 1, 3];
    for (id, &delay_ms) in delays_ms.iter().enumerate() {
        let fired = Rc::clone(&fired);
        let delay = Duration::from_millis(delay_ms);
        event_loop.call_later(delay, move |_| {
            let elapsed = start.elapsed();
            assert!(
                elapsed >= delay,
                "timer {id} fired after {elapsed:?}, before its {delay:?}"
            );
            fired.borrow_mut().push(id);
        });
    }
    // call_at with a deadline between two others, and one in the past (fires at the next step).
    let at = start + Duration::from_millis(25);
    let fired_at = Rc::clone(&fired);
    event_loop.call_at(at, move |_| {
        assert!(Instant::now() >= at);
        fired_at.borrow_mut().push(100);
    });
    let fired_past = Rc::clone(&fired);
    event_loop.call_at(start, move |_| fired_past.borrow_mut().push(200));
    assert_eq!(event_loop.timers_len(), 10);
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    // By deadline; equal deadlines (the two 10 ms timers) in scheduling order. The past deadline
    // (`start`) ties with the 0 ms timer's, which was scheduled a moment later, so it is not earlier.
    assert_eq!(*fired.borrow(), [200, 3, 6, 7, 1, 5, 4, 100, 2, 0]);
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(event_loop.timers_len(), 0);
}

fn cancel_and_reset(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    hang_guard(event_loop.handle());
    let fired = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let make = |name: &'static str| {
        let fired = Rc::clone(&fired);
        move |_: &mut EventLoop| fired.borrow_mut().push((name, start.elapsed()))
    };
    let cancelled = event_loop.call_later(Duration::from_millis(5), make("cancelled"));
    let kept = event_loop.call_later(Duration::from_millis(10), make("kept"));
    let pushed_back = event_loop.call_later(Duration::from_millis(1), make("pushed back"));
    let pulled_in = event_loop.call_later(Duration::from_secs(3600), make("pulled in"));
    assert!(event_loop.cancel(cancelled));
    assert!(!event_loop.cancel(cancelled));
    assert!(event_loop.deadline(cancelled).is_none());
    assert!(event_loop.reset(pushed_back, Duration::from_millis(40)));
    assert!(event_loop.reset_at(pulled_in, start + Duration::from_millis(20)));
    assert_eq!(
        event_loop.deadline(pulled_in),
        Some(start + Duration::from_millis(20))
    );
    // A timer cancelled by an earlier callback of the same step does not fire.
    // (The canceller is scheduled first for the same delay, so it fires first.)
    let victim = Rc::new(Cell::new(None));
    let target = Rc::clone(&victim);
    event_loop.call_later(Duration::from_millis(30), move |event_loop| {
        assert!(event_loop.cancel(target.get().unwrap()));
    });
    victim.set(Some(
        event_loop.call_later(Duration::from_millis(30), make("victim")),
    ));
    let victim = victim.get().unwrap();
    assert_eq!(event_loop.timers_len(), 5);
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    let fired = fired.borrow();
    let names: Vec<&str> = fired.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["kept", "pulled in", "pushed back"]);
    assert!(fired[1].1 >= Duration::from_millis(20));
    assert!(fired[2].1 >= Duration::from_millis(40));
    assert!(!event_loop.cancel(kept));
    assert!(!event_loop.reset(kept, Duration::ZERO));
    assert!(!event_loop.cancel(victim));
}

fn ten_thousand_timers_stay_bounded(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    hang_guard(event_loop.handle());
    let fired = Rc::new(Cell::new(0usize));
    let timers: Vec<Timer> = (0..10_000u64)
        .map(|i| {
            let fired = Rc::clone(&fired);
            event_loop.call_later(Duration::from_micros(i * 3), move |_| {
                fired.set(fired.get() + 1)
            })
        })
        .collect();
    assert_eq!(event_loop.timers_len(), 10_000);
    for timer in timers.iter().step_by(2) {
        assert!(event_loop.cancel(*timer));
    }
    // Cancelled timers are gone at once, not left in the heap.
    assert_eq!(event_loop.timers_len(), 5_000);
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    assert_eq!(fired.get(), 5_000);
    assert_eq!(event_loop.timers_len(), 0);

    // The keep-alive pattern: 1,000 connections re-set their timeout 10 times each, and cancel it;
    // then a flood of schedule-and-cancel. Nothing accumulates.
    let keep_alive: Vec<Timer> = (0..1_000)
        .map(|_| event_loop.call_later(Duration::from_secs(60), |_| panic!("never due")))
        .collect();
    for round in 0..10u64 {
        for timer in &keep_alive {
            assert!(event_loop.reset(*timer, Duration::from_secs(60 + round)));
        }
        assert_eq!(event_loop.timers_len(), 1_000);
    }
    for timer in keep_alive {
        assert!(event_loop.cancel(timer));
    }
    for _ in 0..10_000 {
        let timer = event_loop.call_later(Duration::from_secs(60), |_| panic!("cancelled"));
        assert!(event_loop.cancel(timer));
    }
    assert_eq!(event_loop.timers_len(), 0);
    assert!(event_loop.is_idle());
}

fn handle_queues_callbacks_and_stops_from_another_thread(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    let handle = event_loop.handle();
    let counter = Arc::new(AtomicUsize::new(0));
    let sender = {
        let counter = Arc::clone(&counter);
        thread::spawn(move || {
            for i in 0..1_000 {
                let counter = Arc::clone(&counter);
                handle
                    .call_soon(move |_| {
                        // In order: each sees the count of those queued before it.
                        assert_eq!(counter.fetch_add(1, Ordering::SeqCst), i);
                    })
                    .unwrap();
                if i % 100 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            // Callbacks queued before the stop run before the loop stops.
            handle.stop().unwrap();
        })
    };
    // Nothing is registered: run_until keeps waiting for the handle (run would return idle).
    let exit = event_loop.run_until(Instant::now() + HANG_GUARD).unwrap();
    assert_eq!(exit, Exit::Stopped);
    assert_eq!(counter.load(Ordering::SeqCst), 1_000);
    sender.join().unwrap();

    // A handle wakes a loop blocked with no timeout at all.
    let handle = event_loop.handle();
    let waker = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        handle.call_soon(|event_loop| event_loop.stop()).unwrap();
    });
    assert!(event_loop.run_once(None).unwrap() <= 1);
    waker.join().unwrap();
}

fn handle_after_drop_is_closed(kind: BackendKind) {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Handle>();
    assert_send_sync_clone::<Handle<Server>>();
    let event_loop = event_loop(kind);
    let handle = event_loop.handle();
    let copy = handle.clone();
    drop(event_loop);
    assert!(matches!(handle.call_soon(|_| {}), Err(Error::Closed)));
    assert!(matches!(copy.stop(), Err(Error::Closed)));
    assert_eq!(
        io::Error::from(copy.stop().unwrap_err()).kind(),
        ErrorKind::BrokenPipe
    );
}

fn run_until_returns_no_earlier_than_the_deadline(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    // With a source that never becomes ready and a timer before the deadline.
    let (quiet, _peer) = socketpair();
    event_loop
        .register(quiet, Interest::READ, |_, _, _| panic!("never ready"))
        .unwrap();
    let fired = Rc::new(Cell::new(false));
    let flag = Rc::clone(&fired);
    event_loop.call_later(Duration::from_millis(10), move |_| flag.set(true));
    for wait_ms in [0u64, 1, 30] {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(wait_ms);
        assert_eq!(event_loop.run_until(deadline).unwrap(), Exit::Deadline);
        assert!(Instant::now() >= deadline);
    }
    assert!(fired.get());
    // Idle: run_until still waits out the deadline.
    let mut idle = self::event_loop(kind);
    let deadline = Instant::now() + Duration::from_millis(20);
    assert_eq!(idle.run_until(deadline).unwrap(), Exit::Deadline);
    assert!(Instant::now() >= deadline);
    assert_eq!(idle.run().unwrap(), Exit::Idle);
    // A stop asked for before the run ends it after one round.
    idle.stop();
    assert_eq!(
        idle.run_until(Instant::now() + HANG_GUARD).unwrap(),
        Exit::Stopped
    );
}

fn run_once_waits_for_its_timeout(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    for wait in [Duration::from_micros(100), Duration::from_millis(15)] {
        let start = Instant::now();
        assert_eq!(event_loop.run_once(Some(wait)).unwrap(), 0);
        assert!(start.elapsed() >= wait, "returned before {wait:?}");
    }
    // A pending timer shortens the wait, but the round still never fires it early.
    let start = Instant::now();
    let delay = Duration::from_millis(10);
    event_loop.call_later(delay, move |_| assert!(start.elapsed() >= delay));
    let mut callbacks = 0;
    while callbacks == 0 {
        callbacks = event_loop.run_once(Some(HANG_GUARD)).unwrap();
    }
    assert!(start.elapsed() >= delay);
}

fn running_again_from_a_callback_is_refused(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    let checked = Rc::new(Cell::new(false));
    let flag = Rc::clone(&checked);
    event_loop.call_soon(move |event_loop| {
        let error = event_loop.run_once(Some(Duration::ZERO)).unwrap_err();
        assert!(matches!(error, Error::AlreadyRunning));
        assert!(matches!(event_loop.run(), Err(Error::AlreadyRunning)));
        flag.set(true);
    });
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    assert!(checked.get());
}

/// A statically dispatched handler type: a listener and its connections, each connection with an idle
/// timeout delivered to the handler itself.
enum Server {
    Listener {
        listener: TcpListener,
        idle_timeout: Duration,
        log: Rc<RefCell<Vec<String>>>,
    },
    Connection {
        stream: TcpStream,
        timer: Option<Timer>,
        idle_timeout: Duration,
        last_data: Instant,
        log: Rc<RefCell<Vec<String>>>,
    },
}

impl AsFd for Server {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Server::Listener { listener, .. } => listener.as_fd(),
            Server::Connection { stream, .. } => stream.as_fd(),
        }
    }
}

impl Handler for Server {
    fn ready(&mut self, event_loop: &mut EventLoop<Server>, _ready: Ready) {
        match self {
            Server::Listener {
                listener,
                idle_timeout,
                log,
            } => {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).unwrap();
                    let fd = event_loop
                        .register_handler(
                            Server::Connection {
                                stream,
                                timer: None,
                                idle_timeout: *idle_timeout,
                                last_data: Instant::now(),
                                log: Rc::clone(log),
                            },
                            Interest::READ,
                        )
                        .unwrap();
                    let timer = event_loop.timeout_after(fd, *idle_timeout).unwrap();
                    match event_loop.handler_mut(fd) {
                        Some(Server::Connection { timer: slot, .. }) => *slot = Some(timer),
                        _ => panic!("the connection was just registered"),
                    }
                    log.borrow_mut().push("accept".into());
                    // One connection only: the listener goes, so the loop ends once it closes.
                    event_loop.unregister(listener.as_raw_fd()).unwrap();
                }
            }
            Server::Connection {
                stream,
                timer,
                idle_timeout,
                last_data,
                log,
            } => {
                let mut buffer = [0; 64];
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => {
                        log.borrow_mut().push("eof".into());
                        event_loop.cancel(timer.take().unwrap());
                        event_loop.unregister(stream.as_raw_fd()).unwrap();
                    }
                    Ok(n) => {
                        stream.write_all(&buffer[..n]).unwrap();
                        *last_data = Instant::now();
                        // Re-set, not re-scheduled: the same handle, no allocation.
                        assert!(event_loop.reset(timer.unwrap(), *idle_timeout));
                        log.borrow_mut().push("data".into());
                    }
                }
            }
        }
    }
}

impl TimeoutHandler for Server {
    fn timeout(&mut self, event_loop: &mut EventLoop<Server>, fired: Timer) {
        let Server::Connection {
            stream,
            timer,
            idle_timeout,
            last_data,
            log,
        } = self
        else {
            panic!("only connections set timeouts");
        };
        assert_eq!(*timer, Some(fired));
        assert!(last_data.elapsed() >= *idle_timeout, "timeout fired early");
        log.borrow_mut().push("timeout".into());
        stream.write_all(b"bye").unwrap();
        event_loop.unregister(stream.as_raw_fd()).unwrap();
    }
}

fn handler_type_with_source_timeouts(kind: BackendKind) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut event_loop = iomux::event_loop::Builder::new()
        .backend(kind)
        .build::<Server>()
        .unwrap();
    hang_guard(event_loop.handle());
    let listener = tcp_listener();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    // Each round trip must beat it; under valgrind, beside the other cases' threads, one can take
    // most of a second.
    let idle_timeout = Duration::from_millis(if util::small_scale() { 3_000 } else { 60 });
    event_loop
        .register_handler(
            Server::Listener {
                listener,
                idle_timeout,
                log: Rc::clone(&log),
            },
            Interest::READ,
        )
        .unwrap();
    let client = thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        // Data more often than the timeout keeps the connection open...
        let mut last_sent = Instant::now();
        for round in 0..4 {
            if round > 0 {
                thread::sleep(Duration::from_millis(20));
            }
            // The server re-sets its timeout after this write arrives, so no earlier than now.
            last_sent = Instant::now();
            stream.write_all(b"ping").unwrap();
            let mut reply = [0; 4];
            stream.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"ping");
        }
        // ...and silence closes it, from the server side, no earlier than the timeout.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye");
        assert!(last_sent.elapsed() >= idle_timeout);
    });
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    client.join().unwrap();
    assert_eq!(
        *log.borrow(),
        ["accept", "data", "data", "data", "data", "timeout"]
    );
    assert_eq!(event_loop.timers_len(), 0);
}

fn panicking_handler_is_unregistered(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    let (source, mut peer) = socketpair();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(Rc::clone(&dropped));
    let fd = event_loop
        .register(source, Interest::READ, move |_, _, _| {
            let _keep = &flag;
            panic!("handler failure");
        })
        .unwrap();
    peer.write_all(b"x").unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run()));
    assert!(outcome.is_err());
    // The handler is gone with its registration (its source closed), and the loop still runs.
    assert!(dropped.get());
    assert!(!event_loop.is_registered(fd));
    assert_eq!(event_loop.sources_len(), 0);
    let mut rest = Vec::new();
    match peer.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0),
        // Closed with the byte unread: the peer sees a reset, which proves the close as well.
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset),
    }
    let ran = Rc::new(Cell::new(false));
    let flag = Rc::clone(&ran);
    event_loop.call_soon(move |_| flag.set(true));
    assert_eq!(event_loop.run().unwrap(), Exit::Idle);
    assert!(ran.get());
}

fn trigger_modes_match_the_backend(kind: BackendKind) {
    let mut event_loop = event_loop(kind);
    let (edge, mut peer) = socketpair();
    let calls = Rc::new(Cell::new(0));
    let counter = Rc::clone(&calls);
    let result = event_loop.register_with(edge, Interest::READ, Trigger::Edge, move |_, _, _| {
        counter.set(counter.get() + 1)
    });
    if kind != BackendKind::Epoll {
        // Edge triggering is refused, never silently downgraded.
        assert!(matches!(result, Err(Error::Selector(_))));
        assert_eq!(
            io::Error::from(result.unwrap_err()).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(event_loop.sources_len(), 0);
    } else {
        result.unwrap();
        peer.write_all(b"x").unwrap();
        // Not read by the callback: edge-triggered, it is reported once.
        for _ in 0..3 {
            event_loop.run_once(Some(Duration::from_millis(5))).unwrap();
        }
        assert_eq!(calls.get(), 1);
    }
    // Oneshot works everywhere: reported once, then silent until modify re-arms it.
    let (oneshot, mut peer) = socketpair();
    let calls = Rc::new(Cell::new(0));
    let counter = Rc::clone(&calls);
    let fd = event_loop
        .register_with(oneshot, Interest::READ, Trigger::Oneshot, move |_, _, _| {
            counter.set(counter.get() + 1)
        })
        .unwrap();
    peer.write_all(b"x").unwrap();
    for _ in 0..3 {
        event_loop.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(calls.get(), 1);
    event_loop.modify(fd, Interest::READ).unwrap();
    event_loop.run_once(Some(HANG_GUARD)).unwrap();
    assert_eq!(calls.get(), 2);
}

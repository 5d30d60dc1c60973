//! The waker, over both its kernel objects (eventfd and pipe): another thread ends a blocked wait,
//! wake-ups coalesce and are never lost, a full pipe never fails a wake, and a waker whose selector
//! was closed or dropped returns `SelectorClosed`.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready, Selector, WakerKind};

use crate::util::{HANG_GUARD, QUIET, expect_quiet, next_fd_number, os, socketpair, timed, wait};

for_each_backend!(
    wakes_a_blocked_wait_from_another_thread,
    wake_before_the_wait_is_not_lost,
    wakes_coalesce,
    full_pipe_never_fails_a_wake,
    wakes_from_many_threads,
    wake_and_events_arrive_in_one_wait,
    waker_is_not_a_registration,
    waker_of_a_closed_selector_is_selector_closed,
    waker_of_a_dropped_selector_is_selector_closed,
);
for_each_backend!(exclusive: registering_the_waker_fd_is_already_registered);

/// Both kernel objects a waker can use, each case runs over both.
const WAKER_KINDS: [WakerKind; 2] = [WakerKind::EventFd, WakerKind::Pipe];

#[track_caller]
fn selector_with<T>(kind: BackendKind, waker: WakerKind) -> Selector<T> {
    Selector::builder()
        .backend(kind)
        .waker(waker)
        .build()
        .unwrap_or_else(|err| panic!("creating a {kind} selector with a {waker:?} waker: {err}"))
}

fn wakes_a_blocked_wait_from_another_thread(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let (a, _b) = socketpair();
        selector.register(&a, Interest::READ, ()).unwrap();
        let waker = selector.waker().unwrap();
        let woke = Arc::new(AtomicBool::new(false));
        let thread = {
            let woke = Arc::clone(&woke);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                woke.store(true, Ordering::SeqCst);
                waker.wake()
            })
        };
        let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, None));
        assert!(reported.is_empty(), "{reported:?}");
        assert!(events.is_woken(), "{kind}/{waker_kind:?}: not woken");
        assert!(
            woke.load(Ordering::SeqCst),
            "{kind}/{waker_kind:?}: returned before the wake"
        );
        assert!(elapsed < HANG_GUARD);
        thread.join().unwrap().unwrap();
        // The wake-up was consumed: the next wait is quiet.
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

fn wake_before_the_wait_is_not_lost(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let waker = selector.waker().unwrap();
        thread::spawn(move || waker.wake()).join().unwrap().unwrap();
        let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(HANG_GUARD)));
        assert!(reported.is_empty());
        assert!(
            events.is_woken(),
            "{kind}/{waker_kind:?}: the early wake was lost"
        );
        assert!(elapsed < HANG_GUARD);
    }
}

/// Many wake-ups before a wait end one wait; the next one waits its full timeout.
fn wakes_coalesce(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let waker = selector.waker().unwrap();
        let clone = waker.clone();
        for _ in 0..50 {
            waker.wake().unwrap();
            clone.wake().unwrap();
        }
        wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert!(events.is_woken(), "{kind}/{waker_kind:?}");
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

/// More wake-ups than a pipe holds (64 KiB of one-byte wakes): none fails, and one wait drains them
/// all.
fn full_pipe_never_fails_a_wake(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let waker = selector.waker().unwrap();
        for _ in 0..70_000 {
            waker.wake().unwrap();
        }
        wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert!(events.is_woken());
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

/// Several threads waking while the selector waits over and over: no wake fails, no event is made up,
/// and once they stop, a last wait drains what is left and then all is quiet.
fn wakes_from_many_threads(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let waker = selector.waker().unwrap();
                thread::spawn(move || {
                    for _ in 0..200 {
                        waker.wake().unwrap();
                        thread::yield_now();
                    }
                })
            })
            .collect();
        let mut woken = 0;
        while threads.iter().any(|thread| !thread.is_finished()) {
            let reported = wait(&mut selector, &mut events, Some(Duration::from_millis(5)));
            assert!(reported.is_empty());
            woken += usize::from(events.is_woken());
        }
        for thread in threads {
            thread.join().unwrap();
        }
        wait(&mut selector, &mut events, Some(Duration::ZERO));
        woken += usize::from(events.is_woken());
        assert!(woken >= 1, "{kind}/{waker_kind:?}: never woken");
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

/// A wake-up and a ready fd in the same wait: the event is returned, and the wait is marked woken.
fn wake_and_events_arrive_in_one_wait(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<&str>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let (a, _b) = socketpair();
        selector.register(&a, Interest::WRITE, "writable").unwrap();
        selector.waker().unwrap().wake().unwrap();
        let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert_eq!(reported, [(a.as_raw_fd(), Ready::WRITABLE)]);
        assert!(events.is_woken(), "{kind}/{waker_kind:?}");
        // Next wait: the event again (level), the wake-up no more.
        let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert_eq!(reported, [(a.as_raw_fd(), Ready::WRITABLE)]);
        assert!(!events.is_woken());
    }
}

/// The waker's fd is the selector's own: it is not counted, listed or reported as a registration.
fn waker_is_not_a_registration(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        let first = selector.waker().unwrap();
        let second = selector.waker().unwrap();
        assert!(selector.is_empty());
        assert_eq!(selector.len(), 0);
        assert!(selector.iter().next().is_none());
        second.wake().unwrap();
        drop(second);
        wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert!(events.is_woken(), "a clone wakes the same selector");
        assert!(events.is_empty());
        first.wake().unwrap();
        wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert!(events.is_woken());
    }
}

fn waker_of_a_closed_selector_is_selector_closed(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let (a, _b) = socketpair();
        selector.register(&a, Interest::READ, ()).unwrap();
        let waker = selector.waker().unwrap();
        let clone = waker.clone();
        waker.wake().unwrap();
        selector.close().unwrap();
        for waker in [&waker, &clone] {
            let err = waker.wake().unwrap_err();
            assert!(matches!(err, Error::SelectorClosed), "{err:?}");
            assert_eq!(
                err.to_string(),
                "the selector this waker belongs to is closed"
            );
        }
        // From another thread too.
        let err = thread::spawn(move || clone.wake()).join().unwrap();
        assert!(matches!(err, Err(Error::SelectorClosed)), "{err:?}");
    }
}

fn waker_of_a_dropped_selector_is_selector_closed(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let waker = selector.waker().unwrap();
        drop(selector);
        assert!(matches!(waker.wake(), Err(Error::SelectorClosed)));
        assert!(matches!(waker.wake(), Err(Error::SelectorClosed)));
    }
}

/// The waker's fd is registered internally: handing its number to `register` is `AlreadyRegistered`
/// (not a second entry for the same fd), and the waker keeps working.
fn registering_the_waker_fd_is_already_registered(kind: BackendKind) {
    for waker_kind in WAKER_KINDS {
        let mut selector = selector_with::<()>(kind, waker_kind);
        let mut events = Events::with_capacity(8);
        // Under the exclusive fd budget the waker's fd (the eventfd, or the pipe's read end, made
        // first) takes the lowest free number.
        let number = next_fd_number();
        let waker = selector.waker().unwrap();
        let err =
            os::with_borrowed(number, |fd| selector.register(fd, Interest::READ, ())).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyRegistered { fd } if fd == number),
            "{kind}/{waker_kind:?}: {err:?}"
        );
        assert!(selector.is_empty());
        waker.wake().unwrap();
        wait(&mut selector, &mut events, Some(HANG_GUARD));
        assert!(events.is_woken());
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

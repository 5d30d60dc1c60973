//! Signals: SIGUSR1 sent to the thread blocked in `select` (a handler installed without
//! `SA_RESTART`, so the system call fails with EINTR) must neither end the wait early nor lose its
//! timeout — the selector resumes with the time left.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use iomux::selector::{BackendKind, Events, Interest, Selector};

use crate::util::{HANG_GUARD, os, selector, send, socketpair, timed};

for_each_backend!(
    signal_does_not_shorten_a_timeout,
    signal_does_not_end_a_blocking_wait_before_the_wake,
    signal_does_not_end_a_blocking_wait_before_data,
);

/// Pause between two signals.
const GAP: Duration = Duration::from_millis(20);

/// What a wait on the other thread ended with: the count, whether it was woken, and how long it took.
type Outcome = (usize, bool, Duration);

/// Starts `selector.select(timeout)` on a new thread and returns once that thread is about to wait.
fn wait_on_thread(mut selector: Selector<()>, timeout: Option<Duration>) -> JoinHandle<Outcome> {
    let (started, is_started) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let mut events = Events::with_capacity(8);
        started.send(()).unwrap();
        let (count, elapsed) = timed(|| selector.select(&mut events, timeout));
        let count = count.unwrap_or_else(|err| panic!("select: {err}"));
        (count, events.is_woken(), elapsed)
    });
    is_started.recv().unwrap();
    waiter
}

/// Sends `signals` SIGUSR1s to `waiter`, `GAP` apart, the first at once; returns how many the
/// handler counted meanwhile (in the whole process, so at least those that landed).
fn interrupt_repeatedly(waiter: &JoinHandle<Outcome>, signals: usize) -> usize {
    let before = os::sigusr1_handled();
    for _ in 0..signals {
        os::interrupt(waiter);
        thread::sleep(GAP);
    }
    os::sigusr1_handled() - before
}

/// A wait of 300 ms, interrupted every 20 ms: still quiet, still at least 300 ms.
fn signal_does_not_shorten_a_timeout(kind: BackendKind) {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let mut selector = selector::<()>(kind);
    let (a, _b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    let waiter = wait_on_thread(selector, Some(TIMEOUT));
    let handled = interrupt_repeatedly(&waiter, 5);
    let (count, woken, elapsed) = waiter.join().unwrap();
    assert!(handled >= 1, "no SIGUSR1 was handled");
    assert_eq!(count, 0, "{kind}: a signal is not an event");
    assert!(!woken);
    assert!(
        elapsed >= TIMEOUT,
        "{kind}: a {TIMEOUT:?} wait interrupted by signals returned after {elapsed:?}"
    );
    assert!(elapsed < HANG_GUARD, "hang guard: {elapsed:?}");
}

/// A wait with no timeout, interrupted several times, returns only when the waker fires.
fn signal_does_not_end_a_blocking_wait_before_the_wake(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let waker = selector.waker().unwrap();
    let waiter = wait_on_thread(selector, None);
    let handled = interrupt_repeatedly(&waiter, 5);
    assert!(handled >= 1, "no SIGUSR1 was handled");
    assert!(
        !waiter.is_finished(),
        "{kind}: a signal ended a wait with no timeout"
    );
    waker.wake().unwrap();
    let (count, woken, elapsed) = waiter.join().unwrap();
    assert_eq!(count, 0);
    assert!(woken, "{kind}: the wait did not end with the wake-up");
    assert!(elapsed >= GAP * 5, "{kind}: returned after {elapsed:?}");
}

/// A wait with no timeout, interrupted several times, returns when data arrives, with its event.
fn signal_does_not_end_a_blocking_wait_before_data(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    let waiter = wait_on_thread(selector, None);
    let handled = interrupt_repeatedly(&waiter, 5);
    assert!(handled >= 1, "no SIGUSR1 was handled");
    assert!(
        !waiter.is_finished(),
        "{kind}: a signal ended a wait with no timeout"
    );
    send(&b, b"x");
    let (count, woken, _) = waiter.join().unwrap();
    assert_eq!(count, 1, "{kind}: the data's event");
    assert!(!woken);
    assert_eq!(crate::util::drain(&a), b"x");
}

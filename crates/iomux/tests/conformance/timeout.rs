//! Timeouts: zero polls, a timeout is never returned early (and is rounded up to the resolution of
//! the wait call in use, never down), `None` blocks until a wake-up, an empty selector still honours
//! its timeout, and `capabilities().resolution` names the call really used.

use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use iomux::selector::{BackendKind, Events, Interest, Ready, Selector};

use crate::util::{HANG_GUARD, expect_quiet, os, selector, socketpair, timed, wait};

for_each_backend!(
    zero_polls_without_waiting,
    one_millisecond_times_out,
    none_blocks_until_woken,
    huge_timeout_blocks_until_woken,
    empty_selector_honours_its_timeout,
    timeout_is_never_returned_early,
    resolution_names_the_wait_call_in_use,
);

fn zero_polls_without_waiting(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, "quiet").unwrap();
    for _ in 0..3 {
        let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(Duration::ZERO)));
        assert!(reported.is_empty(), "{reported:?}");
        assert!(
            elapsed < HANG_GUARD,
            "a zero timeout blocked for {elapsed:?}"
        );
    }
    // With something ready, a zero timeout reports it.
    selector.register(&b, Interest::WRITE, "writable").unwrap();
    let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(Duration::ZERO)));
    assert_eq!(reported, [(b.as_raw_fd(), Ready::WRITABLE)]);
    assert!(
        elapsed < HANG_GUARD,
        "a zero timeout blocked for {elapsed:?}"
    );
}

fn one_millisecond_times_out(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    for _ in 0..5 {
        expect_quiet(&mut selector, &mut events, Duration::from_millis(1));
    }
}

fn none_blocks_until_woken(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    assert_blocks_until_woken(&mut selector, &mut events, None);
}

/// A timeout too large to add to the clock (`Duration::MAX`) blocks like `None`, without overflow.
fn huge_timeout_blocks_until_woken(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    assert_blocks_until_woken(&mut selector, &mut events, Some(Duration::MAX));
    assert_blocks_until_woken(
        &mut selector,
        &mut events,
        Some(Duration::from_secs(u64::MAX / 4)),
    );
}

/// Waits with `timeout` while another thread wakes the selector after a pause: the wait returns
/// woken, with no events, and not before the wake-up.
#[track_caller]
fn assert_blocks_until_woken(
    selector: &mut Selector<()>,
    events: &mut Events,
    timeout: Option<Duration>,
) {
    const PAUSE: Duration = Duration::from_millis(30);
    let waker = selector.waker().unwrap();
    let (count, elapsed) = timed(|| {
        let wake = thread::spawn(move || {
            thread::sleep(PAUSE);
            waker.wake()
        });
        let count = selector.select(events, timeout).unwrap();
        wake.join().unwrap().unwrap();
        count
    });
    assert_eq!(count, 0);
    assert!(events.is_woken(), "{}: not woken", selector.backend());
    assert!(
        elapsed >= PAUSE,
        "{}: returned after {elapsed:?}, before the wake-up",
        selector.backend()
    );
    assert!(elapsed < HANG_GUARD, "hang guard: {elapsed:?}");
}

/// With nothing registered (not even a waker), a wait still lasts its timeout (CPython issues
/// #23009 and #29255), and a zero timeout returns at once.
fn empty_selector_honours_its_timeout(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    assert!(selector.is_empty());
    for timeout in [Duration::from_millis(1), Duration::from_millis(40)] {
        expect_quiet(&mut selector, &mut events, timeout);
    }
    let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(Duration::ZERO)));
    assert!(reported.is_empty());
    assert!(elapsed < HANG_GUARD);
}

/// The rounding `Selector::select` promises: up to a whole multiple of the resolution.
fn round_up(timeout: Duration, resolution: Duration) -> Duration {
    let step = resolution.as_nanos().max(1);
    Duration::from_nanos(
        u64::try_from(timeout.as_nanos().div_ceil(step) * step).expect("small timeouts"),
    )
}

/// Small timeouts, down to one microsecond, never return early: each wait lasts at least what was
/// asked, rounded up to the backend's resolution (so 1 µs on poll waits a whole millisecond).
fn timeout_is_never_returned_early(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    let resolution = selector.capabilities().resolution;
    let timeouts = [
        Duration::from_micros(1),
        Duration::from_micros(300),
        Duration::from_millis(1),
        Duration::from_micros(1500),
        Duration::from_millis(15),
    ];
    for _ in 0..3 {
        for timeout in timeouts {
            let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(timeout)));
            assert!(reported.is_empty(), "{reported:?}");
            let rounded = round_up(timeout, resolution);
            assert!(
                elapsed >= rounded,
                "{kind}: asked {timeout:?} (rounded to {rounded:?}), returned after {elapsed:?}"
            );
        }
    }
}

/// select(2) takes microseconds, poll(2) and epoll_wait(2) milliseconds, epoll_pwait2(2)
/// nanoseconds; epoll uses epoll_pwait2 exactly when the kernel has it.
fn resolution_names_the_wait_call_in_use(kind: BackendKind) {
    let selector = selector::<()>(kind);
    let expected = match kind {
        BackendKind::Select => Duration::from_micros(1),
        BackendKind::Poll => Duration::from_millis(1),
        BackendKind::Epoll if os::epoll_pwait2_available() => Duration::from_nanos(1),
        BackendKind::Epoll => Duration::from_millis(1),
        other => panic!("no expected resolution for the {other} backend"),
    };
    assert_eq!(selector.capabilities().resolution, expected);
    // The same answer from a second selector: the probe is made once per process.
    assert_eq!(
        Selector::<()>::with_backend(kind)
            .unwrap()
            .capabilities()
            .resolution,
        expected
    );
}

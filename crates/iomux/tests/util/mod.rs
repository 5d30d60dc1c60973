//! Shared helpers of the library's test suites: fd pairs over socketpairs, pipes and loopback TCP,
//! waits against a deadline, and the fd-budget lock that keeps cases holding thousands of fds (or
//! depending on which fd number comes next) from running beside any other case. The few OS calls std
//! has no safe form for live in [`os`].

pub mod os;

use std::collections::BTreeMap;
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use iomux::selector::{BackendKind, Events, Ready, Selector};

/// The longest any wait for something that must happen may take before the case fails: generous,
/// because the machine is shared and slow; it only turns a hang into a failure.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// How long a case watches for events that must not come.
pub const QUIET: Duration = Duration::from_millis(50);

/// Whether the big cases run scaled down: `IOMUX_TEST_SCALE=small`, which `scripts/valgrind.sh` sets
/// because everything runs tens of times slower under valgrind (smaller payloads, longer timeouts
/// where a case depends on round trips beating a timer).
pub fn small_scale() -> bool {
    std::env::var_os("IOMUX_TEST_SCALE").is_some_and(|scale| scale == "small")
}

/// The process-wide fd budget: a case that holds thousands of fds, or needs fd numbers not to move
/// under it (closing and reusing numbers, filling every number below `FD_SETSIZE`), takes it
/// exclusively; every other case takes it shared.
static FD_BUDGET: RwLock<()> = RwLock::new(());

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, once per process.
fn raise_nofile_limit() {
    static RAISE: Once = Once::new();
    RAISE.call_once(|| {
        iomux::raise_nofile_limit().expect("raising the soft RLIMIT_NOFILE to the hard limit");
    });
}

/// Takes the fd budget shared: for a case that holds a handful of fds and does not care which
/// numbers they get. (A case that panicked while holding the lock does not poison it for the rest.)
pub fn shared() -> RwLockReadGuard<'static, ()> {
    raise_nofile_limit();
    FD_BUDGET.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the fd budget exclusively: no other case runs meanwhile, so this one may hold thousands of
/// fds and rely on the kernel handing out the lowest free number.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    raise_nofile_limit();
    FD_BUDGET.write().unwrap_or_else(PoisonError::into_inner)
}

/// A selector over `kind`.
#[track_caller]
pub fn selector<T>(kind: BackendKind) -> Selector<T> {
    Selector::with_backend(kind).unwrap_or_else(|err| panic!("creating a {kind} selector: {err}"))
}

/// The lowest fd number free right now: the one the kernel hands out next. Meaningful only under
/// the [`exclusive`] fd budget.
#[track_caller]
pub fn next_fd_number() -> RawFd {
    let (probe, _) = socketpair();
    probe.as_raw_fd()
}

/// A connected, non-blocking Unix stream socketpair.
#[track_caller]
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("non-blocking socket");
    b.set_nonblocking(true).expect("non-blocking socket");
    (a, b)
}

/// A pipe: (read end, write end), both blocking (cases read only what they wrote).
#[track_caller]
pub fn pipe() -> (PipeReader, PipeWriter) {
    io::pipe().expect("pipe")
}

/// A listening TCP socket on 127.0.0.1, on a port the kernel picks.
#[track_caller]
pub fn tcp_listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0")
}

/// A connected pair of non-blocking TCP sockets over loopback: (client, server).
#[track_caller]
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = tcp_listener();
    let client =
        TcpStream::connect(listener.local_addr().expect("local address")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for stream in [&client, &server] {
        stream.set_nonblocking(true).expect("non-blocking socket");
        stream.set_nodelay(true).expect("TCP_NODELAY");
    }
    (client, server)
}

/// Writes all of `bytes` (a socketpair or pipe has room for the few bytes cases send).
#[track_caller]
pub fn send(mut writer: impl Write, bytes: &[u8]) {
    writer.write_all(bytes).expect("write");
}

/// Reads a non-blocking stream until `WouldBlock` (or end of stream); returns the bytes read.
#[track_caller]
pub fn drain(mut reader: impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return all,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => panic!("read: {err}"),
        }
    }
}

/// Runs `f` and measures how long it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let result = f();
    (result, start.elapsed())
}

/// One wait: the events it reported as (fd, readiness), in the order the backend gave them.
#[track_caller]
pub fn wait<T>(
    selector: &mut Selector<T>,
    events: &mut Events,
    timeout: Option<Duration>,
) -> Vec<(RawFd, Ready)> {
    let count = selector
        .select(events, timeout)
        .unwrap_or_else(|err| panic!("select on {}: {err}", selector.backend()));
    assert_eq!(count, events.len(), "select's count and the events differ");
    events
        .iter()
        .map(|event| (event.fd(), event.ready()))
        .collect()
}

/// Waits (up to [`HANG_GUARD`]) until `fd` is reported with every flag of `wanted` (`Ready::EMPTY`:
/// any event) and returns all it was reported with in that wait.
///
/// # Panics
/// If the guard passes first, naming what was reported meanwhile.
#[track_caller]
pub fn expect_ready<T>(
    selector: &mut Selector<T>,
    events: &mut Events,
    fd: RawFd,
    wanted: Ready,
) -> Ready {
    let deadline = Instant::now() + HANG_GUARD;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "{}: fd {fd} was not reported {wanted:?} within {HANG_GUARD:?}; last reports: {seen:?}",
                selector.backend()
            );
        }
        let reported = wait(selector, events, Some(left));
        if let Some(&(_, ready)) = reported
            .iter()
            .find(|&&(ready_fd, ready)| ready_fd == fd && ready.contains(wanted))
        {
            return ready;
        }
        seen = reported;
    }
}

/// Waits `timeout` and asserts nothing was reported, no waker fired, and the wait took at least
/// `timeout`.
#[track_caller]
pub fn expect_quiet<T>(selector: &mut Selector<T>, events: &mut Events, timeout: Duration) {
    let (reported, elapsed) = timed(|| wait(selector, events, Some(timeout)));
    assert!(
        reported.is_empty(),
        "{}: expected no events for {timeout:?}, got {reported:?}",
        selector.backend()
    );
    assert!(
        !events.is_woken(),
        "{}: unexpected wake-up",
        selector.backend()
    );
    assert!(
        elapsed >= timeout,
        "{}: a quiet wait of {timeout:?} returned after {elapsed:?}",
        selector.backend()
    );
}

/// Waits (up to [`HANG_GUARD`], as many waits as it takes) until every fd of `expected` has been
/// reported readable, and returns how each wait's reports were spread: fd -> number of waits that
/// reported it.
///
/// # Panics
/// If an fd outside `expected` is reported, or the guard passes first.
#[track_caller]
pub fn expect_readable_set<T>(
    selector: &mut Selector<T>,
    events: &mut Events,
    expected: &[RawFd],
) -> BTreeMap<RawFd, usize> {
    let deadline = Instant::now() + HANG_GUARD;
    let mut reported = BTreeMap::new();
    while reported.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{}: only {} of {} fds were reported readable within {HANG_GUARD:?}",
            selector.backend(),
            reported.len(),
            expected.len()
        );
        for (fd, ready) in wait(selector, events, Some(left)) {
            assert!(
                expected.contains(&fd),
                "{}: fd {fd} was reported {ready:?} but nothing was sent to it",
                selector.backend()
            );
            assert!(ready.is_readable(), "fd {fd} reported {ready:?}");
            *reported.entry(fd).or_insert(0) += 1;
        }
    }
    reported
}

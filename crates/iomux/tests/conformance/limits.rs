//! Limits: select's `FD_SETSIZE` ceiling (fds at or above 1024 refused with the typed `FdTooLarge`,
//! every fd below it usable), 5,000 fds on poll and epoll, and how many events one wait returns.
//!
//! The big cases hold the fd budget exclusively: thousands of fds of their own, and fd numbers that
//! must stay below 1024 for select.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready};

use crate::util::{
    HANG_GUARD, expect_readable_set, expect_ready, os, selector, send, socketpair, wait,
};

/// select's ceiling, `FD_SETSIZE` on Linux.
const FD_SETSIZE: RawFd = 1024;

for_each_backend!(
    capabilities_describe_the_backend,
    fd_at_or_above_fd_setsize,
    events_capacity_bounds_only_epoll,
);
for_each_backend!(
    exclusive: five_thousand_fds,
    every_free_fd_below_fd_setsize,
);

fn capabilities_describe_the_backend(kind: BackendKind) {
    let selector = selector::<()>(kind);
    assert_eq!(selector.backend(), kind);
    let capabilities = selector.capabilities();
    let expected = match kind {
        BackendKind::Select => (Some(FD_SETSIZE), false, false),
        BackendKind::Poll => (None, false, false),
        BackendKind::Epoll => (None, true, true),
        other => panic!("no expected capabilities for the {other} backend"),
    };
    assert_eq!(
        (
            capabilities.fd_limit,
            capabilities.edge,
            capabilities.native_oneshot
        ),
        expected
    );
}

/// An fd numbered 1024 or more: select refuses it at register with `FdTooLarge`, naming the limit and
/// the way out, before anything touches a bitmap; poll and epoll watch it.
fn fd_at_or_above_fd_setsize(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let high = os::dup_at_least(&a, FD_SETSIZE).unwrap();
    let fd = high.as_raw_fd();
    assert!(fd >= FD_SETSIZE);
    let result = selector.register(&high, Interest::READ, "high");
    if kind == BackendKind::Select {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::FdTooLarge { fd: f, limit: FD_SETSIZE, backend: BackendKind::Select } if f == fd),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "fd {fd} is at or above select's limit of 1024 (FD_SETSIZE); use the poll or epoll backend, which have no such limit"
            )
        );
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
        assert!(selector.get(fd).is_none());
        assert!(selector.is_empty());
        // The selector is unharmed: the same socket under a small number works.
        selector.register(&a, Interest::READ, "low").unwrap();
        send(&b, b"x");
        expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    } else {
        result.unwrap();
        send(&b, b"x");
        expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
        assert_eq!(*selector.get(fd).unwrap().data(), "high");
        assert_eq!(selector.unregister(fd).unwrap(), "high");
    }
}

/// Ten fds ready at once and an events buffer of one: epoll returns one per wait and hands out the
/// others in turn on the next waits; select and poll report all ten in one wait, the buffer growing
/// to hold them.
fn events_capacity_bounds_only_epoll(kind: BackendKind) {
    const READY: usize = 10;
    let mut selector = selector::<usize>(kind);
    let mut events = Events::with_capacity(1);
    assert_eq!(events.capacity(), 1);
    assert_eq!(Events::with_capacity(0).capacity(), 1, "at least one");
    let pairs: Vec<(UnixStream, UnixStream)> = (0..READY).map(|_| socketpair()).collect();
    for (index, (a, b)) in pairs.iter().enumerate() {
        selector.register(a, Interest::READ, index).unwrap();
        send(b, b"x");
    }
    let expected: Vec<RawFd> = pairs.iter().map(|(a, _)| a.as_raw_fd()).collect();
    if kind == BackendKind::Epoll {
        let mut seen = BTreeMap::new();
        while seen.len() < READY {
            let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
            assert_eq!(reported.len(), 1, "{reported:?}");
            *seen.entry(reported[0].0).or_insert(0) += 1;
            assert!(
                seen.values().sum::<usize>() <= READY,
                "level-triggered fds are handed out in turn, none twice before all once: {seen:?}"
            );
        }
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), sorted(expected));
    } else {
        let reported = expect_readable_set(&mut selector, &mut events, &expected);
        assert!(
            reported.values().all(|&waits| waits == 1),
            "all ten in one wait: {reported:?}"
        );
        assert_eq!(events.len(), READY);
    }
}

fn sorted(mut fds: Vec<RawFd>) -> Vec<RawFd> {
    fds.sort_unstable();
    fds
}

/// 5,000 socketpairs, one end of each registered (10,000 fds open): poll and epoll take them all and
/// report exactly the hundred that were written to, under their own keys, however many waits epoll's
/// buffer needs. select takes every fd below 1024 and refuses each above with `FdTooLarge`.
fn five_thousand_fds(kind: BackendKind) {
    // 2,000 under valgrind: still thousands of fds, most of them above select's limit.
    let pairs_count = if crate::util::small_scale() {
        2_000
    } else {
        5_000
    };
    let mut selector = selector::<usize>(kind);
    let mut events = Events::with_capacity(64);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..pairs_count).map(|_| socketpair()).collect();
    let mut refused = 0;
    for (index, (a, _)) in pairs.iter().enumerate() {
        match selector.register(a, Interest::READ, index) {
            Ok(()) => assert!(kind != BackendKind::Select || a.as_raw_fd() < FD_SETSIZE),
            Err(Error::FdTooLarge { fd, limit, .. })
                if kind == BackendKind::Select && fd >= FD_SETSIZE && limit == FD_SETSIZE =>
            {
                refused += 1;
            }
            Err(err) => panic!("{kind}: registering fd {}: {err}", a.as_raw_fd()),
        }
    }
    assert_eq!(selector.len() + refused, pairs_count);
    if kind == BackendKind::Select {
        assert!(refused > pairs_count / 2, "most of them are above 1024");
    } else {
        assert_eq!(selector.len(), pairs_count);
    }

    // Write to every 50th registered pair, and to the last registered one (the highest fd).
    let registered: Vec<usize> = (0..pairs_count)
        .filter(|&index| selector.get(pairs[index].0.as_raw_fd()).is_some())
        .collect();
    let mut chosen: Vec<usize> = registered.iter().copied().step_by(50).collect();
    chosen.push(*registered.last().unwrap());
    chosen.dedup();
    for &index in &chosen {
        send(&pairs[index].1, b"x");
    }
    let expected: Vec<RawFd> = chosen
        .iter()
        .map(|&index| pairs[index].0.as_raw_fd())
        .collect();
    let reported = expect_readable_set(&mut selector, &mut events, &expected);
    for &fd in reported.keys() {
        let index = *selector.get(fd).unwrap().data();
        assert_eq!(pairs[index].0.as_raw_fd(), fd, "the key of fd {fd}");
    }

    // Unregistering all of them returns each one's data.
    for index in registered {
        assert_eq!(
            selector.unregister(pairs[index].0.as_raw_fd()).unwrap(),
            index
        );
    }
    assert!(selector.is_empty());
}

/// Every free fd number below 1024 taken by sockets of this case (at least 1,000 of them) and all
/// registered: each backend, select included, reports exactly those written to, up to fd 1023. Then,
/// with no number below 1024 left, select cannot watch a waker's fd and says so with `FdTooLarge`;
/// poll and epoll can.
fn every_free_fd_below_fd_setsize(kind: BackendKind) {
    let mut selector = selector::<usize>(kind);
    let mut events = Events::with_capacity(256);
    // Pairs while both ends fit below 1024, then single duplicates for the numbers left.
    let mut pairs: Vec<(UnixStream, UnixStream)> = Vec::new();
    loop {
        let (a, b) = socketpair();
        if a.as_raw_fd() >= FD_SETSIZE || b.as_raw_fd() >= FD_SETSIZE {
            break;
        }
        pairs.push((a, b));
    }
    let mut duplicates: Vec<OwnedFd> = Vec::new();
    loop {
        let duplicate: OwnedFd = pairs[0].1.try_clone().unwrap().into();
        if duplicate.as_raw_fd() >= FD_SETSIZE {
            break;
        }
        duplicates.push(duplicate);
    }
    let fds: Vec<RawFd> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_raw_fd(), b.as_raw_fd()])
        .chain(duplicates.iter().map(AsRawFd::as_raw_fd))
        .collect();
    assert!(fds.len() >= 1_000, "only {} free fds below 1024", fds.len());
    assert_eq!(fds.iter().max(), Some(&(FD_SETSIZE - 1)), "1023 is ours");

    for (index, (a, b)) in pairs.iter().enumerate() {
        selector.register(a, Interest::READ, 2 * index).unwrap();
        selector.register(b, Interest::READ, 2 * index + 1).unwrap();
    }
    for (index, duplicate) in duplicates.iter().enumerate() {
        selector
            .register(duplicate, Interest::READ, 2 * pairs.len() + index)
            .unwrap();
    }
    assert_eq!(selector.len(), fds.len());

    // Write to the `a` end of every 10th pair (so `b` is readable), and to whichever end holds 1023.
    let mut expected = Vec::new();
    for (index, (a, b)) in pairs.iter().enumerate() {
        if index % 10 == 3 || b.as_raw_fd() == FD_SETSIZE - 1 {
            send(a, b"x");
            expected.push(b.as_raw_fd());
        }
        if a.as_raw_fd() == FD_SETSIZE - 1 {
            send(b, b"x");
            expected.push(a.as_raw_fd());
        }
    }
    if duplicates
        .last()
        .is_some_and(|duplicate| duplicate.as_raw_fd() == FD_SETSIZE - 1)
    {
        // 1023 is a duplicate of pairs[0].1: make that one readable (with all its duplicates).
        send(&pairs[0].0, b"x");
        expected.push(pairs[0].1.as_raw_fd());
        expected.extend(duplicates.iter().map(AsRawFd::as_raw_fd));
    }
    let reported = expect_readable_set(&mut selector, &mut events, &expected);
    assert!(reported.contains_key(&(FD_SETSIZE - 1)), "fd 1023 reported");

    match (kind, selector.waker()) {
        (BackendKind::Select, Err(Error::FdTooLarge { fd, limit, .. })) => {
            assert!(fd >= FD_SETSIZE && limit == FD_SETSIZE);
        }
        (BackendKind::Select, other) => panic!("select's waker fd cannot be below 1024: {other:?}"),
        (_, waker) => {
            waker.unwrap().wake().unwrap();
            wait(&mut selector, &mut events, Some(HANG_GUARD));
            assert!(events.is_woken());
        }
    }
}

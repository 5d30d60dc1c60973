//! Trigger modes: level reports while ready, edge once per new arrival (epoll; select and poll refuse
//! it with the typed `Unsupported` error), oneshot once until `modify` re-arms it (native on epoll,
//! emulated on select and poll).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready, Selector, Trigger};

use crate::util::{QUIET, drain, expect_quiet, expect_ready, selector, send, socketpair, wait};

for_each_backend!(
    level_reports_until_drained,
    edge_reports_each_arrival_once,
    edge_write_reports_once_per_room,
    edge_is_refused_without_native_support,
    oneshot_reports_once_until_rearmed,
    oneshot_rearms_with_a_new_interest,
    oneshot_fds_ready_together_are_each_reported_once,
    oneshot_can_become_level,
);

fn level_reports_until_drained(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    send(&b, b"ab");
    for _ in 0..3 {
        expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    }
    // Half read: still ready.
    let mut one = [0; 1];
    (&a).read_exact(&mut one).unwrap();
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert_eq!(drain(&a), b"b");
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// Edge: one report per arrival, even with the data left unread; a new arrival is reported again.
fn edge_reports_each_arrival_once(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    if !register_edge(&mut selector, &a, Interest::READ, "edge") {
        return;
    }
    expect_quiet(&mut selector, &mut events, QUIET);
    for _ in 0..3 {
        send(&b, b"x");
        let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
        assert!(!ready.is_read_closed(), "{ready:?}");
        // Unread, but already reported: silent until something new arrives.
        expect_quiet(&mut selector, &mut events, QUIET);
        assert_eq!(
            selector.get(a.as_raw_fd()).unwrap().trigger(),
            Trigger::Edge
        );
    }
    // Drained to WouldBlock, then one more byte: reported once more.
    assert_eq!(drain(&a), b"xxx");
    send(&b, b"y");
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    expect_quiet(&mut selector, &mut events, QUIET);
    // The peer's close is news too: reported once, as read-closed.
    drop(b);
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert!(ready.is_read_closed(), "{ready:?}");
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// Edge on write: room to write is reported once, and again only after the buffer filled up and the
/// peer made room.
fn edge_write_reports_once_per_room(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    if !register_edge(&mut selector, &a, Interest::WRITE, ()) {
        return;
    }
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::WRITABLE);
    expect_quiet(&mut selector, &mut events, QUIET);
    // Fill the send buffer until WouldBlock, bounded by 64 MiB.
    let chunk = [0u8; 64 * 1024];
    let mut written = 0;
    while written < 64 << 20 {
        match std::io::Write::write(&mut &a, &chunk) {
            Ok(n) => written += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => panic!("write: {err}"),
        }
    }
    assert!(written < 64 << 20, "the socket buffer never filled");
    expect_quiet(&mut selector, &mut events, QUIET);
    assert_eq!(drain(&b).len(), written);
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::WRITABLE);
}

/// Registers `fd` edge-triggered where the backend has it (returns true); elsewhere asserts the typed
/// refusal — at register and at modify — and that nothing changed (returns false).
#[track_caller]
fn register_edge<T: Clone + PartialEq + std::fmt::Debug>(
    selector: &mut Selector<T>,
    fd: &UnixStream,
    interest: Interest,
    data: T,
) -> bool {
    let kind = selector.backend();
    let result = selector.register_with(fd, interest, Trigger::Edge, data.clone());
    if selector.capabilities().edge {
        assert_eq!(kind, BackendKind::Epoll, "only epoll has native edge");
        result.unwrap();
        return true;
    }
    assert_unsupported(kind, result.unwrap_err());
    assert!(selector.get(fd.as_raw_fd()).is_none());
    assert!(selector.is_empty());
    false
}

#[track_caller]
fn assert_unsupported(kind: BackendKind, err: Error) {
    assert!(
        matches!(err, Error::Unsupported { backend, trigger: Trigger::Edge } if backend == kind),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "edge triggering is not supported by the {kind} backend; use epoll, or level or oneshot triggering"
        )
    );
}

/// select and poll refuse edge triggering at register and at modify, with the typed error, and the
/// registration is left as it was; epoll accepts both.
fn edge_is_refused_without_native_support(kind: BackendKind) {
    let mut selector = selector::<u8>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let edge = selector.register_with(&a, Interest::READ, Trigger::Edge, 0);
    let modified = if kind == BackendKind::Epoll {
        edge.unwrap();
        assert_eq!(selector.unregister(a.as_raw_fd()).unwrap(), 0);
        selector.register(&a, Interest::READ, 1).unwrap();
        selector
            .modify_with(a.as_raw_fd(), Interest::READ, Trigger::Edge, 2)
            .unwrap();
        Trigger::Edge
    } else {
        assert_unsupported(kind, edge.unwrap_err());
        selector.register(&a, Interest::READ, 1).unwrap();
        let err = selector
            .modify_with(a.as_raw_fd(), Interest::WRITE, Trigger::Edge, 2)
            .unwrap_err();
        assert_unsupported(kind, err);
        Trigger::Level
    };
    let key = selector.get(a.as_raw_fd()).unwrap();
    assert_eq!(key.trigger(), modified);
    assert_eq!(key.interest(), Interest::READ);
    assert_eq!(*key.data(), if modified == Trigger::Edge { 2 } else { 1 });
    send(&b, b"x");
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    // Level (select, poll) reports the unread byte again; edge (epoll) does not.
    if modified == Trigger::Level {
        expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    } else {
        expect_quiet(&mut selector, &mut events, QUIET);
    }
}

/// Oneshot: reported once, then silent though still ready, until `modify` or `modify_interest`
/// re-arms it; the trigger stays oneshot across re-arming.
fn oneshot_reports_once_until_rearmed(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    selector
        .register_with(&a, Interest::READ, Trigger::Oneshot, "first")
        .unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);
    send(&b, b"x");
    expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    expect_quiet(&mut selector, &mut events, QUIET);
    // New data does not re-arm it either.
    send(&b, b"y");
    expect_quiet(&mut selector, &mut events, QUIET);

    assert_eq!(
        selector.modify(fd, Interest::READ, "second").unwrap(),
        "first"
    );
    assert_eq!(selector.get(fd).unwrap().trigger(), Trigger::Oneshot);
    expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    assert_eq!(*selector.get(fd).unwrap().data(), "second");
    expect_quiet(&mut selector, &mut events, QUIET);

    selector.modify_interest(fd, Interest::READ).unwrap();
    expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    expect_quiet(&mut selector, &mut events, QUIET);
    assert_eq!(drain(&a), b"xy");

    // A disarmed registration still unregisters cleanly and returns its data.
    assert_eq!(selector.unregister(fd).unwrap(), "second");
    assert!(selector.is_empty());
}

fn oneshot_rearms_with_a_new_interest(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    selector
        .register_with(&a, Interest::WRITE, Trigger::Oneshot, ())
        .unwrap();
    let ready = expect_ready(&mut selector, &mut events, fd, Ready::WRITABLE);
    assert!(!ready.is_readable());
    expect_quiet(&mut selector, &mut events, QUIET);
    send(&b, b"x");
    selector.modify_interest(fd, Interest::READ).unwrap();
    let ready = expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    assert!(!ready.is_writable(), "{ready:?}");
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// Several oneshot fds ready in the same wait are each reported, then each disarmed.
fn oneshot_fds_ready_together_are_each_reported_once(kind: BackendKind) {
    let mut selector = selector::<usize>(kind);
    let mut events = Events::with_capacity(16);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..5).map(|_| socketpair()).collect();
    for (index, (a, b)) in pairs.iter().enumerate() {
        selector
            .register_with(a, Interest::READ, Trigger::Oneshot, index)
            .unwrap();
        send(b, b"x");
    }
    let mut seen = Vec::new();
    while seen.len() < pairs.len() {
        for (fd, ready) in wait(&mut selector, &mut events, Some(crate::util::HANG_GUARD)) {
            assert!(ready.is_readable());
            let index = *selector.get(fd).unwrap().data();
            assert!(!seen.contains(&index), "oneshot fd {fd} reported twice");
            seen.push(index);
        }
    }
    expect_quiet(&mut selector, &mut events, QUIET);
    // Re-arm one: only it comes back.
    let (a, _) = &pairs[3];
    selector.modify(a.as_raw_fd(), Interest::READ, 33).unwrap();
    let reported = wait(&mut selector, &mut events, Some(crate::util::HANG_GUARD));
    assert_eq!(reported, [(a.as_raw_fd(), Ready::READABLE)]);
    assert_eq!(*selector.get(a.as_raw_fd()).unwrap().data(), 33);
}

/// `modify_with` changes the trigger: a disarmed oneshot registration made level reports again and
/// keeps reporting.
fn oneshot_can_become_level(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    selector
        .register_with(&a, Interest::READ, Trigger::Oneshot, ())
        .unwrap();
    send(&b, b"x");
    expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    expect_quiet(&mut selector, &mut events, QUIET);
    selector
        .modify_with(fd, Interest::READ, Trigger::Level, ())
        .unwrap();
    assert_eq!(selector.get(fd).unwrap().trigger(), Trigger::Level);
    for _ in 0..3 {
        expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    }
}

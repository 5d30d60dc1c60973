//! Closing: the selector's own `close` and drop, and fds closed while registered — reported invalid by
//! select and poll, dropped silently by epoll (whose still-open duplicates keep reporting under the
//! old key), unregistered cleanly afterwards, and a reused number refused until then.
//!
//! Cases that depend on which number the kernel hands out next hold the fd budget exclusively.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready, Selector, Trigger};

use crate::util::{
    HANG_GUARD, QUIET, drain, expect_quiet, expect_ready, next_fd_number, selector, send,
    socketpair, timed, wait,
};

for_each_backend!(close_and_drop_leave_registered_fds_open);
for_each_backend!(
    exclusive: closed_fd_is_invalid_or_dropped,
    unregister_after_close_returns_data,
    reused_number_is_already_registered,
    duplicate_of_a_closed_fd_reports_under_the_old_key,
    modify_of_a_closed_fd_keeps_the_registration_consistent,
    close_releases_every_fd_it_opened,
);

/// The selector never owns the fds registered with it: closing or dropping it leaves them open.
fn close_and_drop_leave_registered_fds_open(kind: BackendKind) {
    for close in [true, false] {
        let mut selector = selector::<()>(kind);
        let (a, b) = socketpair();
        selector.register(&a, Interest::READ, ()).unwrap();
        selector
            .register_with(&b, Interest::WRITE, Trigger::Oneshot, ())
            .unwrap();
        selector.waker().unwrap();
        if close {
            selector.close().unwrap();
        } else {
            drop(selector);
        }
        send(&a, b"still open");
        assert_eq!(drain(&b), b"still open");
    }
}

/// An fd closed while registered: select and poll report it `INVALID` on every wait, under its key;
/// epoll drops it silently, and the wait lasts its timeout.
fn closed_fd_is_invalid_or_dropped(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    let (c, d) = socketpair();
    let number = a.as_raw_fd();
    selector.register(&a, Interest::READ, "closed").unwrap();
    selector.register(&c, Interest::READ, "open").unwrap();
    drop(a);
    if kind == BackendKind::Epoll {
        expect_quiet(&mut selector, &mut events, QUIET);
    } else {
        for _ in 0..3 {
            let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
            assert_eq!(reported, [(number, Ready::INVALID)], "{kind}");
            assert_eq!(*selector.get(number).unwrap().data(), "closed");
        }
    }
    // The other registration still works beside it.
    send(&d, b"x");
    let ready = expect_ready(&mut selector, &mut events, c.as_raw_fd(), Ready::READABLE);
    assert!(!ready.is_invalid());
    if kind != BackendKind::Epoll {
        assert!(
            events
                .iter()
                .any(|event| event.fd() == number && event.ready().is_invalid()),
            "{kind}: the closed fd is reported beside the ready one"
        );
    }
    assert_eq!(selector.unregister(number).unwrap(), "closed");
    let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
    assert_eq!(reported, [(c.as_raw_fd(), Ready::READABLE)]);
}

/// Both ends closed while registered, one of them a disarmed oneshot: unregister succeeds for each
/// and hands back its data (after CPython's `test_unregister_after_socket_close`).
fn unregister_after_close_returns_data(kind: BackendKind) {
    let mut selector = selector::<String>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let (fd_a, fd_b) = (a.as_raw_fd(), b.as_raw_fd());
    selector
        .register(&a, Interest::READ, "a".to_owned())
        .unwrap();
    selector
        .register_with(&b, Interest::WRITE, Trigger::Oneshot, "b".to_owned())
        .unwrap();
    expect_ready(&mut selector, &mut events, fd_b, Ready::WRITABLE);
    drop(a);
    drop(b);
    assert_eq!(selector.unregister(fd_a).unwrap(), "a");
    assert_eq!(selector.unregister(fd_b).unwrap(), "b");
    assert!(selector.is_empty());
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// The number of an fd closed while registered is reused by a new fd: registering it gives
/// `AlreadyRegistered` until the old registration is unregistered. select and poll watch the new fd
/// under the old key meanwhile; epoll does not watch it at all.
fn reused_number_is_already_registered(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    let number = a.as_raw_fd();
    selector.register(&a, Interest::READ, "old").unwrap();
    drop(a);
    let (reused, peer) = socketpair();
    assert_eq!(
        reused.as_raw_fd(),
        number,
        "the lowest free number is reused"
    );

    let err = selector
        .register(&reused, Interest::READ, "new")
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyRegistered { fd } if fd == number),
        "{err:?}"
    );
    send(&peer, b"x");
    if kind == BackendKind::Epoll {
        expect_quiet(&mut selector, &mut events, QUIET);
    } else {
        let ready = expect_ready(&mut selector, &mut events, number, Ready::READABLE);
        assert!(!ready.is_invalid(), "{ready:?}");
        assert_eq!(*selector.get(number).unwrap().data(), "old");
    }

    assert_eq!(selector.unregister(number).unwrap(), "old");
    selector.register(&reused, Interest::READ, "new").unwrap();
    expect_ready(&mut selector, &mut events, number, Ready::READABLE);
    assert_eq!(*selector.get(number).unwrap().data(), "new");
}

/// The registered fd is closed but a duplicate of it stays open. epoll keeps watching the open file
/// and reports it under the old number and key; after `unregister` its events are dropped and a wait
/// still lasts its timeout. select and poll report the closed number `INVALID` instead.
fn duplicate_of_a_closed_fd_reports_under_the_old_key(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let number = a.as_raw_fd();
    let duplicate: OwnedFd = a.try_clone().unwrap().into();
    selector.register(&a, Interest::READ, "old key").unwrap();
    drop(a);
    send(&b, b"x");
    let ready = expect_ready(&mut selector, &mut events, number, Ready::EMPTY);
    assert_eq!(*selector.get(number).unwrap().data(), "old key");
    if kind == BackendKind::Epoll {
        assert_eq!(ready, Ready::READABLE);
    } else {
        assert_eq!(ready, Ready::INVALID);
    }

    assert_eq!(selector.unregister(number).unwrap(), "old key");
    assert!(selector.is_empty());
    // epoll still has the duplicate's file in its set and it is still readable; the selector drops
    // those events and keeps waiting for the whole timeout.
    let timeout = Duration::from_millis(60);
    let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, Some(timeout)));
    assert!(reported.is_empty(), "{reported:?}");
    assert!(
        elapsed >= timeout,
        "{kind}: returned after {elapsed:?} of {timeout:?}"
    );
    drop(duplicate);
}

/// `modify` of a closed fd: epoll refuses it (EBADF) and the registration is unchanged; select and
/// poll keep their interest set in user space and accept it. Either way the key says what is watched,
/// and unregister then works.
fn modify_of_a_closed_fd_keeps_the_registration_consistent(kind: BackendKind) {
    let mut selector = selector::<u8>(kind);
    let (a, _b) = socketpair();
    let number = a.as_raw_fd();
    selector.register(&a, Interest::READ, 1).unwrap();
    drop(a);
    let result = selector.modify(number, Interest::WRITE, 2);
    let key = selector.get(number).unwrap();
    match result {
        Ok(old) => {
            assert_ne!(kind, BackendKind::Epoll, "epoll cannot modify a closed fd");
            assert_eq!(old, 1);
            assert_eq!((key.interest(), *key.data()), (Interest::WRITE, 2));
        }
        Err(err) => {
            assert_eq!(kind, BackendKind::Epoll, "{err}");
            assert_eq!(
                err.os_error().and_then(std::io::Error::raw_os_error),
                Some(libc::EBADF)
            );
            assert_eq!((key.interest(), *key.data()), (Interest::READ, 1));
        }
    }
    assert!(selector.unregister(number).is_ok());
    assert!(selector.is_empty());
}

/// `close` (and drop) release every fd the selector opened — epoll's instance and the waker's
/// eventfd or pipe — once no waker is left: the next fd number is the same as before it was made.
fn close_releases_every_fd_it_opened(kind: BackendKind) {
    for close in [true, false] {
        let before = next_fd_number();
        let mut selector: Selector<()> = Selector::builder()
            .backend(kind)
            .waker(iomux::selector::WakerKind::Pipe)
            .build()
            .unwrap();
        let waker = selector.waker().unwrap();
        assert_ne!(next_fd_number(), before, "the selector holds fds");
        drop(waker);
        if close {
            selector.close().unwrap();
        } else {
            drop(selector);
        }
        assert_eq!(next_fd_number(), before, "{kind}: an fd was left open");
    }
}

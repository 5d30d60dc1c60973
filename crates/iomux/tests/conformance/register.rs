//! Registration bookkeeping: register, modify, modify_interest, unregister, get, get_mut, iter and
//! len, the typed errors for double and missing registrations, and fds the kernel refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready, Trigger};

use crate::util::{
    QUIET, expect_quiet, expect_ready, os, selector, send, socketpair, tcp_listener, wait,
};

for_each_backend!(
    get_iter_and_len_follow_registrations,
    register_twice_is_already_registered,
    unknown_fd_is_not_registered,
    modify_changes_interest_and_data_and_returns_old_data,
    modify_interest_keeps_data_and_trigger,
    get_mut_changes_data_in_place,
    unregister_returns_data_and_stops_reports,
    register_again_after_unregister,
    duplicate_fd_is_a_separate_registration,
    regular_file_is_ready_or_refused,
    many_pairs_each_reported_under_its_own_key,
    errors_convert_to_io_error_kinds,
    churn_keeps_every_registration_right,
);
for_each_backend!(exclusive: closed_fd_is_an_error);

fn get_iter_and_len_follow_registrations(kind: BackendKind) {
    let mut selector = selector::<String>(kind);
    assert!(selector.is_empty());
    assert_eq!(selector.len(), 0);
    assert!(selector.iter().next().is_none());

    let (a, b) = socketpair();
    let listener = tcp_listener();
    selector
        .register(&b, Interest::WRITE, "b".to_owned())
        .unwrap();
    selector
        .register(&a, Interest::READ, "a".to_owned())
        .unwrap();
    selector
        .register_with(
            &listener,
            Interest::READ,
            Trigger::Oneshot,
            "listener".to_owned(),
        )
        .unwrap();
    assert_eq!(selector.len(), 3);
    assert!(!selector.is_empty());

    let key = selector.get(a.as_raw_fd()).unwrap();
    assert_eq!(key.fd(), a.as_raw_fd());
    assert_eq!(key.interest(), Interest::READ);
    assert_eq!(key.trigger(), Trigger::Level);
    assert_eq!(key.data(), "a");
    let key = selector.get(listener.as_raw_fd()).unwrap();
    assert_eq!(key.trigger(), Trigger::Oneshot);
    assert_eq!(key.data(), "listener");

    let mut expected = vec![
        (a.as_raw_fd(), "a"),
        (b.as_raw_fd(), "b"),
        (listener.as_raw_fd(), "listener"),
    ];
    expected.sort();
    let listed: Vec<_> = selector
        .iter()
        .map(|key| (key.fd(), key.data().as_str()))
        .collect();
    assert_eq!(
        listed, expected,
        "iter lists every registration in fd order"
    );

    assert!(selector.get(-1).is_none());
    assert!(selector.get(i32::MAX).is_none());
    selector.unregister(b.as_raw_fd()).unwrap();
    assert_eq!(selector.len(), 2);
    assert!(selector.get(b.as_raw_fd()).is_none());
}

fn register_twice_is_already_registered(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, "first").unwrap();

    for trigger in [Trigger::Level, Trigger::Oneshot] {
        let err = selector
            .register_with(&a, Interest::WRITE, trigger, "second")
            .unwrap_err();
        assert!(
            matches!(err, Error::AlreadyRegistered { fd } if fd == a.as_raw_fd()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("fd {} is already registered", a.as_raw_fd())),
            "{err}"
        );
    }
    // The first registration is untouched: same interest, trigger, data, and it still works.
    let key = selector.get(a.as_raw_fd()).unwrap();
    assert_eq!(
        (key.interest(), key.trigger(), *key.data()),
        (Interest::READ, Trigger::Level, "first")
    );
    assert_eq!(selector.len(), 1);
    send(&b, b"x");
    let mut events = Events::with_capacity(8);
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert!(
        !ready.is_writable(),
        "WRITE was never registered: {ready:?}"
    );
}

fn unknown_fd_is_not_registered(kind: BackendKind) {
    let mut selector = selector::<u8>(kind);
    let (a, _b) = socketpair();
    let fd = a.as_raw_fd();
    for unknown in [fd, -1, 99_999] {
        let not_registered =
            |err: Error| matches!(err, Error::NotRegistered { fd } if fd == unknown);
        assert!(not_registered(selector.unregister(unknown).unwrap_err()));
        assert!(not_registered(
            selector.modify(unknown, Interest::READ, 1).unwrap_err()
        ));
        assert!(not_registered(
            selector
                .modify_interest(unknown, Interest::READ)
                .unwrap_err()
        ));
        assert!(not_registered(
            selector
                .modify_with(unknown, Interest::READ, Trigger::Oneshot, 1)
                .unwrap_err()
        ));
        assert!(selector.get(unknown).is_none());
        assert!(selector.get_mut(unknown).is_none());
    }
    let message = selector.unregister(fd).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("fd {fd} is not registered with this selector")
    );

    // Unregistering twice: the second time it is unknown again.
    selector.register(&a, Interest::READ, 7).unwrap();
    assert_eq!(selector.unregister(fd).unwrap(), 7);
    assert!(matches!(
        selector.unregister(fd),
        Err(Error::NotRegistered { .. })
    ));
    assert!(selector.is_empty());
}

fn modify_changes_interest_and_data_and_returns_old_data(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();

    // Watched for reading, with nothing to read: quiet, though the socket is writable.
    selector.register(&a, Interest::READ, "reader").unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);

    // Now for writing: reported at once, under the new data.
    assert_eq!(
        selector.modify(fd, Interest::WRITE, "writer").unwrap(),
        "reader"
    );
    let key = selector.get(fd).unwrap();
    assert_eq!((key.interest(), *key.data()), (Interest::WRITE, "writer"));
    let ready = expect_ready(&mut selector, &mut events, fd, Ready::WRITABLE);
    assert!(!ready.is_readable(), "{ready:?}");
    assert_eq!(*selector.get(fd).unwrap().data(), "writer");

    // Data only: same interest, new data.
    assert_eq!(
        selector.modify(fd, Interest::WRITE, "same").unwrap(),
        "writer"
    );
    assert_eq!(selector.get(fd).unwrap().interest(), Interest::WRITE);

    // Back to reading: the write readiness is no longer reported, the read one is.
    assert_eq!(
        selector.modify(fd, Interest::READ, "reader again").unwrap(),
        "same"
    );
    expect_quiet(&mut selector, &mut events, QUIET);
    send(&b, b"ping");
    let ready = expect_ready(&mut selector, &mut events, fd, Ready::READABLE);
    assert!(!ready.is_writable(), "{ready:?}");
    assert_eq!(selector.len(), 1);
}

fn modify_interest_keeps_data_and_trigger(kind: BackendKind) {
    let mut selector = selector::<Vec<u8>>(kind);
    let mut events = Events::with_capacity(8);
    let (a, _b) = socketpair();
    let fd = a.as_raw_fd();
    selector
        .register_with(&a, Interest::READ, Trigger::Oneshot, vec![1, 2, 3])
        .unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);

    selector
        .modify_interest(fd, Interest::READ | Interest::WRITE)
        .unwrap();
    let key = selector.get(fd).unwrap();
    assert_eq!(key.interest(), Interest::READ | Interest::WRITE);
    assert_eq!(key.trigger(), Trigger::Oneshot);
    assert_eq!(key.data(), &[1, 2, 3]);
    expect_ready(&mut selector, &mut events, fd, Ready::WRITABLE);
}

fn get_mut_changes_data_in_place(kind: BackendKind) {
    let mut selector = selector::<u32>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, 1).unwrap();
    *selector.get_mut(a.as_raw_fd()).unwrap().data_mut() += 41;
    send(&b, b"x");
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert_eq!(*selector.get(a.as_raw_fd()).unwrap().data(), 42);
    assert_eq!(selector.unregister(a.as_raw_fd()).unwrap(), 42);
}

fn unregister_returns_data_and_stops_reports(kind: BackendKind) {
    let mut selector = selector::<String>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let (c, d) = socketpair();
    selector
        .register(&a, Interest::READ, "a".to_owned())
        .unwrap();
    selector
        .register(&c, Interest::READ, "c".to_owned())
        .unwrap();
    send(&b, b"x");
    send(&d, b"x");
    expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);

    assert_eq!(selector.unregister(a.as_raw_fd()).unwrap(), "a");
    assert_eq!(selector.len(), 1);
    // `a` still has unread data, but only `c` is reported now.
    for _ in 0..3 {
        let reported = wait(&mut selector, &mut events, Some(QUIET));
        assert_eq!(
            reported.iter().map(|&(fd, _)| fd).collect::<Vec<_>>(),
            [c.as_raw_fd()]
        );
    }
    assert_eq!(selector.unregister(c.as_raw_fd()).unwrap(), "c");
    expect_quiet(&mut selector, &mut events, QUIET);
}

fn register_again_after_unregister(kind: BackendKind) {
    let mut selector = selector::<u8>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    for round in 0..3 {
        selector.register(&a, Interest::READ, round).unwrap();
        send(&b, b"x");
        expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
        assert_eq!(*selector.get(a.as_raw_fd()).unwrap().data(), round);
        assert_eq!(selector.unregister(a.as_raw_fd()).unwrap(), round);
    }
    assert!(selector.is_empty());
}

/// A `dup` is another fd number for the same socket: every backend watches it on its own, with its
/// own data.
fn duplicate_fd_is_a_separate_registration(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    let a2 = a.try_clone().unwrap();
    selector.register(&a, Interest::READ, "original").unwrap();
    selector.register(&a2, Interest::READ, "duplicate").unwrap();
    send(&b, b"x");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        for (fd, ready) in wait(&mut selector, &mut events, Some(crate::util::HANG_GUARD)) {
            assert!(ready.is_readable());
            let data = *selector.get(fd).unwrap().data();
            if !seen.contains(&data) {
                seen.push(data);
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["duplicate", "original"]);
    assert_eq!(selector.unregister(a2.as_raw_fd()).unwrap(), "duplicate");
    drop(a2);
    let reported = wait(&mut selector, &mut events, Some(QUIET));
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].0, a.as_raw_fd());
}

/// A regular file is always ready to select and poll; epoll(7) refuses it with EPERM, and the failed
/// register leaves nothing behind.
fn regular_file_is_ready_or_refused(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let file = tempfile::tempfile().unwrap();
    let fd = file.as_raw_fd();
    let result = selector.register(&file, Interest::READ | Interest::WRITE, "file");
    if kind == BackendKind::Epoll {
        let err = result.unwrap_err();
        let os_error = err.os_error().expect("an OS error");
        assert_eq!(os_error.raw_os_error(), Some(libc::EPERM), "{err}");
        assert!(
            matches!(err, Error::Os { operation: "register", fd: Some(f), backend: BackendKind::Epoll, .. } if f == fd),
            "{err:?}"
        );
        assert!(selector.get(fd).is_none(), "a refused fd is not registered");
        assert!(selector.is_empty());
        // The refusal does not wedge the selector: a socket registers fine afterwards.
        let (a, _b) = socketpair();
        selector.register(&a, Interest::WRITE, "socket").unwrap();
        expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::WRITABLE);
    } else {
        result.unwrap();
        let ready = expect_ready(
            &mut selector,
            &mut events,
            fd,
            Ready::READABLE | Ready::WRITABLE,
        );
        assert!(!ready.is_invalid(), "{ready:?}");
        assert_eq!(selector.unregister(fd).unwrap(), "file");
    }
}

/// Twelve socketpairs, each end registered: write to one writer at a time, and exactly its reader is
/// reported readable, under its own key (after CPython's `test_selector`).
fn many_pairs_each_reported_under_its_own_key(kind: BackendKind) {
    const PAIRS: usize = 12;
    const MESSAGE: &[u8] = b"one message per pair";
    let mut selector = selector::<(bool, usize)>(kind);
    let mut events = Events::with_capacity(64);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| socketpair()).collect();
    for (index, (reader, writer)) in pairs.iter().enumerate() {
        selector
            .register(reader, Interest::READ, (false, index))
            .unwrap();
        selector
            .register(writer, Interest::WRITE, (true, index))
            .unwrap();
    }
    let mut received = Vec::new();
    while !selector.is_empty() {
        let reported = wait(&mut selector, &mut events, Some(crate::util::HANG_GUARD));
        let writers: Vec<usize> = reported
            .iter()
            .map(|&(fd, _)| *selector.get(fd).unwrap().data())
            .filter_map(|(is_writer, index)| is_writer.then_some(index))
            .collect();
        assert!(!writers.is_empty(), "no writer reported: {reported:?}");
        // Pick a different writer each round, so the order is not just the fd order.
        let index = writers[received.len() * 7 % writers.len()];
        let (reader, writer) = &pairs[index];
        send(writer, MESSAGE);
        selector.unregister(writer.as_raw_fd()).unwrap();

        let ready = expect_ready(
            &mut selector,
            &mut events,
            reader.as_raw_fd(),
            Ready::READABLE,
        );
        assert!(ready.is_readable());
        let readers: Vec<_> = events
            .iter()
            .map(|event| *selector.get(event.fd()).unwrap().data())
            .filter(|(is_writer, _)| !is_writer)
            .collect();
        assert_eq!(
            readers,
            [(false, index)],
            "only the reader written to is ready"
        );
        received.push((index, crate::util::drain(reader)));
        selector.unregister(reader.as_raw_fd()).unwrap();
    }
    assert_eq!(received.len(), PAIRS);
    for (_, bytes) in &received {
        assert_eq!(bytes, MESSAGE);
    }
    let mut order: Vec<usize> = received.iter().map(|&(index, _)| index).collect();
    order.sort_unstable();
    assert_eq!(order, (0..PAIRS).collect::<Vec<_>>());
}

/// Each selector error converts into the `io::Error` kind the IO traits expect.
fn errors_convert_to_io_error_kinds(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let (a, _b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    let already = io::Error::from(selector.register(&a, Interest::READ, ()).unwrap_err());
    assert_eq!(already.kind(), io::ErrorKind::AlreadyExists);
    let missing = io::Error::from(selector.unregister(-1).unwrap_err());
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    assert!(missing.to_string().contains("fd -1 is not registered"));
}

/// A closed fd cannot be registered: every backend answers with the OS error EBADF (select and poll
/// check it at register time, as epoll's kernel does), never a panic, and nothing is left behind.
fn closed_fd_is_an_error(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let (a, _b) = socketpair();
    let number = a.as_raw_fd();
    drop(a);
    let err = selector
        .register(os::closed_fd(number), Interest::READ, ())
        .unwrap_err();
    assert_eq!(
        err.os_error().and_then(io::Error::raw_os_error),
        Some(libc::EBADF),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "register fd {number} with the {kind} backend failed"
        )),
        "{err}"
    );
    assert!(selector.get(number).is_none());
    assert!(selector.is_empty());
    // The selector still works afterwards, including for the number once it is reused.
    let (c, _d) = socketpair();
    assert_eq!(c.as_raw_fd(), number, "the lowest free number is reused");
    selector.register(&c, Interest::WRITE, ()).unwrap();
    let mut events = Events::with_capacity(8);
    expect_ready(&mut selector, &mut events, number, Ready::WRITABLE);
}

/// A few hundred register, unregister and modify calls in a fixed pseudo-random order, level and
/// oneshot mixed, over 24 socketpairs of which every third has data: after each call a zero-timeout
/// wait reports exactly the registered, armed fds with data, each under its current data. (Exercises
/// the backends' bookkeeping as entries come and go — poll's swap-remove with disarmed entries,
/// select's `nfds` shrinking.)
fn churn_keeps_every_registration_right(kind: BackendKind) {
    const PAIRS: usize = 24;
    let mut selector = selector::<u32>(kind);
    let mut events = Events::with_capacity(64);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| socketpair()).collect();
    for (_, b) in pairs.iter().step_by(3) {
        send(b, b"x");
    }
    let has_data = |index: usize| index.is_multiple_of(3);
    // The model: registered index -> (trigger, armed, data).
    let mut model: BTreeMap<usize, (Trigger, bool, u32)> = BTreeMap::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for step in 0..400u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let index = (seed % PAIRS as u64) as usize;
        let fd = pairs[index].0.as_raw_fd();
        match (model.get(&index).copied(), seed >> 32 & 3) {
            (None, choice) => {
                let trigger = if choice % 2 == 0 {
                    Trigger::Level
                } else {
                    Trigger::Oneshot
                };
                selector
                    .register_with(&pairs[index].0, Interest::READ, trigger, step)
                    .unwrap();
                model.insert(index, (trigger, true, step));
            }
            (Some((_, _, data)), 0) => {
                assert_eq!(selector.unregister(fd).unwrap(), data, "step {step}");
                model.remove(&index);
            }
            (Some((trigger, _, data)), _) => {
                assert_eq!(
                    selector.modify(fd, Interest::READ, step).unwrap(),
                    data,
                    "step {step}"
                );
                model.insert(index, (trigger, true, step));
            }
        }
        assert_eq!(selector.len(), model.len(), "step {step}");

        let expected: BTreeSet<RawFd> = model
            .iter()
            .filter(|&(&index, &(_, armed, _))| armed && has_data(index))
            .map(|(&index, _)| pairs[index].0.as_raw_fd())
            .collect();
        let reported = wait(&mut selector, &mut events, Some(Duration::ZERO));
        let reported_fds: BTreeSet<RawFd> = reported.iter().map(|&(fd, _)| fd).collect();
        assert_eq!(reported_fds, expected, "{kind}, step {step}");
        assert_eq!(reported.len(), expected.len(), "each fd once");
        for (index, (trigger, armed, data)) in model.iter_mut() {
            let key = selector.get(pairs[*index].0.as_raw_fd()).unwrap();
            assert_eq!((key.trigger(), *key.data()), (*trigger, *data));
            if *trigger == Trigger::Oneshot && has_data(*index) {
                *armed = false;
            }
        }
    }
}

//! What a wait reports: readable and writable on socketpairs, pipes and TCP, the peer's close and
//! shutdown, pipe hang-up and broken pipe, refused and reset TCP connections, and priority
//! (out-of-band) data.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use iomux::selector::{BackendKind, Events, Interest, Ready};
use socket2::{Domain, SockRef, Socket, Type};

use crate::util::{
    HANG_GUARD, QUIET, drain, expect_quiet, expect_ready, pipe, selector, send, socketpair,
    tcp_listener, tcp_pair, timed, wait,
};

for_each_backend!(
    socketpair_reports_only_what_is_asked,
    pipe_ends_are_readable_and_writable,
    tcp_accept_connect_and_data,
    refused_connect_reports_an_error,
    data_from_another_thread_ends_a_blocking_wait,
    peer_close_is_read_closed,
    tcp_peer_close_is_read_closed,
    shutdown_write_is_read_closed_not_hup,
    pipe_writer_closed_is_hup,
    pipe_reader_closed_is_an_error_for_the_writer,
    priority_data_is_reported,
    reset_connection_reports_error_and_hup,
);

fn socketpair_reports_only_what_is_asked(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, "reader").unwrap();
    selector.register(&b, Interest::WRITE, "writer").unwrap();

    // Only the writer is ready: a's room to write is not asked for, and it has nothing to read.
    let reported = wait(&mut selector, &mut events, Some(HANG_GUARD));
    assert_eq!(reported.len(), 1, "{reported:?}");
    let (fd, ready) = reported[0];
    assert_eq!(fd, b.as_raw_fd());
    assert!(ready.is_writable() && !ready.is_readable(), "{ready:?}");
    assert_eq!(*selector.get(fd).unwrap().data(), "writer");

    send(&b, b"hello");
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert!(!ready.is_writable(), "{ready:?}");
    assert!(
        !ready.is_read_closed() && !ready.is_write_closed(),
        "{ready:?}"
    );
    assert_eq!(events.len(), 2, "reader and writer both ready");
    assert_eq!(drain(&a), b"hello");

    // Read and write interest together: both flags in one event.
    selector
        .modify(a.as_raw_fd(), Interest::READ | Interest::WRITE, "both")
        .unwrap();
    send(&b, b"again");
    let ready = expect_ready(
        &mut selector,
        &mut events,
        a.as_raw_fd(),
        Ready::READABLE | Ready::WRITABLE,
    );
    assert!(!ready.is_priority() && !ready.is_error(), "{ready:?}");
}

fn pipe_ends_are_readable_and_writable(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (mut reader, writer) = pipe();
    selector
        .register(&reader, Interest::READ, "read end")
        .unwrap();
    selector
        .register(&writer, Interest::WRITE, "write end")
        .unwrap();

    let ready = expect_ready(
        &mut selector,
        &mut events,
        writer.as_raw_fd(),
        Ready::WRITABLE,
    );
    assert!(!ready.is_readable(), "{ready:?}");
    assert_eq!(events.len(), 1, "the read end has nothing yet");

    send(&writer, b"through the pipe");
    expect_ready(
        &mut selector,
        &mut events,
        reader.as_raw_fd(),
        Ready::READABLE,
    );
    let mut buffer = [0; 16];
    reader.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"through the pipe");
    selector.unregister(writer.as_raw_fd()).unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// A listener is readable when a connection waits to be accepted; a non-blocking connect is
/// writable once it completes; the accepted socket is readable when data arrives.
fn tcp_accept_connect_and_data(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let listener = tcp_listener();
    listener.set_nonblocking(true).unwrap();
    selector
        .register(&listener, Interest::READ, "listener")
        .unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);

    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    client.set_nonblocking(true).unwrap();
    match client.connect(&listener.local_addr().unwrap().into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => panic!("connect: {err}"),
    }
    selector
        .register(&client, Interest::WRITE, "client")
        .unwrap();
    expect_ready(
        &mut selector,
        &mut events,
        client.as_raw_fd(),
        Ready::WRITABLE,
    );
    assert!(
        client.take_error().unwrap().is_none(),
        "the connect succeeded"
    );

    expect_ready(
        &mut selector,
        &mut events,
        listener.as_raw_fd(),
        Ready::READABLE,
    );
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap().as_socket().unwrap());
    server.set_nonblocking(true).unwrap();
    selector
        .register(&server, Interest::READ, "server")
        .unwrap();
    selector.unregister(listener.as_raw_fd()).unwrap();
    selector.unregister(client.as_raw_fd()).unwrap();

    (&client).write_all(b"over tcp").unwrap();
    expect_ready(
        &mut selector,
        &mut events,
        server.as_raw_fd(),
        Ready::READABLE,
    );
    let mut buffer = [0; 8];
    server.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"over tcp");
}

/// A non-blocking connect to a port nobody listens on: poll and epoll report an error (and hang-up);
/// select reports it writable. Either way `SO_ERROR` then says "connection refused".
fn refused_connect_reports_an_error(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    // Bound but not listening: connects to its port are refused, and nobody else can take the port.
    let closed = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    closed
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    client.set_nonblocking(true).unwrap();
    match client.connect(&closed.local_addr().unwrap()) {
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
            selector.register(&client, Interest::WRITE, ()).unwrap();
            let ready = expect_ready(&mut selector, &mut events, client.as_raw_fd(), Ready::EMPTY);
            if kind == BackendKind::Select {
                assert!(ready.is_writable(), "{ready:?}");
            } else {
                assert!(ready.is_error() && ready.is_write_closed(), "{ready:?}");
            }
            let error = client.take_error().unwrap().expect("SO_ERROR is set");
            assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        }
        // Loopback may refuse at once, before connect returns: nothing left to wait for.
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}"),
        Ok(()) => panic!("connected to a socket that is not listening"),
    }
}

fn data_from_another_thread_ends_a_blocking_wait(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        send(&b, b"wake up");
        b
    });
    let (reported, elapsed) = timed(|| wait(&mut selector, &mut events, None));
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].0, a.as_raw_fd());
    assert!(reported[0].1.is_readable());
    assert!(!events.is_woken());
    assert!(elapsed < HANG_GUARD, "hang guard: {elapsed:?}");
    let _b = writer.join().unwrap();
    assert_eq!(drain(&a), b"wake up");
}

/// The peer of a socketpair closes: poll and epoll say read-closed; select says readable; and every
/// backend's socket then reads the data left, then end of stream.
fn peer_close_is_read_closed(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    send(&b, b"last words");
    drop(b);
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert_peer_closed(kind, ready);
    assert_eq!(drain(&a), b"last words");
    assert_eq!((&a).read(&mut [0; 8]).unwrap(), 0, "end of stream");
    // Level-triggered: the end of stream stays reported.
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    assert_peer_closed(kind, ready);
}

fn tcp_peer_close_is_read_closed(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (client, server) = tcp_pair();
    selector.register(&server, Interest::READ, ()).unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);
    drop(client);
    let ready = expect_ready(
        &mut selector,
        &mut events,
        server.as_raw_fd(),
        Ready::READABLE,
    );
    assert_peer_closed(kind, ready);
    assert_eq!((&server).read(&mut [0; 8]).unwrap(), 0, "end of stream");
}

#[track_caller]
fn assert_peer_closed(kind: BackendKind, ready: Ready) {
    assert!(ready.is_readable(), "{ready:?}");
    if kind == BackendKind::Select {
        assert_eq!(ready, Ready::READABLE, "select has no hang-up flags");
    } else {
        assert!(ready.is_read_closed(), "{ready:?}");
    }
}

/// The peer shuts down only its write side: read-closed (RDHUP) but not hang-up, and writing to it
/// still works.
fn shutdown_write_is_read_closed_not_hup(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (a, b) = socketpair();
    selector.register(&a, Interest::READ, ()).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    let ready = expect_ready(&mut selector, &mut events, a.as_raw_fd(), Ready::READABLE);
    if kind == BackendKind::Select {
        assert_eq!(ready, Ready::READABLE);
    } else {
        assert!(ready.contains(Ready::READ_CLOSED), "{ready:?}");
        assert!(ready.is_read_closed() && !ready.is_hup(), "{ready:?}");
        assert!(!ready.is_write_closed(), "{ready:?}");
    }
    assert_eq!((&a).read(&mut [0; 8]).unwrap(), 0, "end of stream");
    send(&a, b"still open this way");
    assert_eq!(drain(&b), b"still open this way");
}

/// The write end of a pipe closes: the read end hangs up (HUP) on poll and epoll, is readable on
/// select, and reads the rest then end of stream.
fn pipe_writer_closed_is_hup(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (mut reader, writer) = pipe();
    selector.register(&reader, Interest::READ, ()).unwrap();
    send(&writer, b"bye");
    drop(writer);
    let ready = expect_ready(
        &mut selector,
        &mut events,
        reader.as_raw_fd(),
        Ready::READABLE,
    );
    if kind == BackendKind::Select {
        assert_eq!(ready, Ready::READABLE);
    } else {
        assert!(ready.is_hup() && ready.is_read_closed(), "{ready:?}");
    }
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"bye");
}

/// The read end of a pipe closes: the write end reports an error on poll and epoll (reported though
/// only WRITE was asked for), writable on select; a write then fails with a broken pipe.
fn pipe_reader_closed_is_an_error_for_the_writer(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (reader, mut writer) = pipe();
    selector.register(&writer, Interest::WRITE, ()).unwrap();
    drop(reader);
    let ready = expect_ready(&mut selector, &mut events, writer.as_raw_fd(), Ready::EMPTY);
    if kind == BackendKind::Select {
        assert!(ready.is_writable(), "{ready:?}");
    } else {
        assert!(ready.is_error() && ready.is_write_closed(), "{ready:?}");
    }
    let err = writer.write(b"anyone?").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
}

/// TCP urgent data (`MSG_OOB`) is priority readiness: select's exceptional set (the seeds' `xlist`),
/// `POLLPRI`, `EPOLLPRI`. Once the byte is read it is no longer reported.
fn priority_data_is_reported(kind: BackendKind) {
    let mut selector = selector::<&str>(kind);
    let mut events = Events::with_capacity(8);
    let (client, server) = tcp_pair();
    selector
        .register(&server, Interest::PRIORITY, "oob")
        .unwrap();
    expect_quiet(&mut selector, &mut events, QUIET);

    assert_eq!(SockRef::from(&client).send_out_of_band(b"!").unwrap(), 1);
    let ready = expect_ready(
        &mut selector,
        &mut events,
        server.as_raw_fd(),
        Ready::PRIORITY,
    );
    assert!(ready.is_priority(), "{ready:?}");
    assert_eq!(*selector.get(server.as_raw_fd()).unwrap().data(), "oob");

    // Reading the urgent byte consumes it: priority is no longer reported.
    let mut byte = [MaybeUninit::<u8>::uninit()];
    assert_eq!(
        SockRef::from(&server).recv_out_of_band(&mut byte).unwrap(),
        1
    );
    expect_quiet(&mut selector, &mut events, QUIET);
}

/// The peer resets the connection (`SO_LINGER` 0, then close): poll and epoll report error and
/// hang-up; select reports readable. Every backend's socket then reads "connection reset".
fn reset_connection_reports_error_and_hup(kind: BackendKind) {
    let mut selector = selector::<()>(kind);
    let mut events = Events::with_capacity(8);
    let (client, server) = tcp_pair();
    selector.register(&server, Interest::READ, ()).unwrap();
    SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let ready = expect_ready(&mut selector, &mut events, server.as_raw_fd(), Ready::EMPTY);
    if kind == BackendKind::Select {
        assert!(ready.is_readable(), "{ready:?}");
    } else {
        assert!(ready.is_error() && ready.is_hup(), "{ready:?}");
        assert!(
            ready.is_read_closed() && ready.is_write_closed(),
            "{ready:?}"
        );
    }
    let err = (&server).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}

//! Graceful shutdown on SIGTERM and SIGINT: in-flight responses complete, idle connections close,
//! no new connection is accepted, the exit status is 0 — and a client that never reads cannot hold
//! the server past the shutdown timeout.

use std::io::Read;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{HANG_GUARD, Server, Site, request, sha256};

#[test]
fn sigterm_during_a_large_transfer_lets_it_complete_and_exits_0() {
    let site = Site::new();
    let content: Vec<u8> = (0..(24u32 << 20))
        .map(|index| (index % 253) as u8)
        .collect();
    site.write("large.bin", &content);
    let mut server = Server::start(&site.root(), &[]);
    let mut idle = server.connect();
    assert_eq!(idle.get("/a.txt", &[]).status, 200);

    let mut client = server.connect();
    client.send(request("GET", "/large.bin", &[]).as_bytes());
    let mut start = [0; 64 * 1024];
    client.stream.read_exact(&mut start).unwrap();
    server.signal("TERM");
    // The idle connection is closed at once; new connections are refused once the listener is gone.
    idle.expect_closed();
    let deadline = Instant::now() + HANG_GUARD;
    while TcpStream::connect(server.address).is_ok() {
        assert!(Instant::now() < deadline, "the listener was never closed");
        thread::sleep(Duration::from_millis(20));
    }
    // The transfer in flight completes, then the connection closes.
    let mut received = start.to_vec();
    received.extend(client.read_to_close());
    let body_start = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap()
        + 4;
    assert_eq!(received.len() - body_start, content.len());
    assert_eq!(sha256(&received[body_start..]), sha256(&content));
    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; stderr: {}",
        server.stderr()
    );
}

#[test]
fn sigint_with_idle_connections_exits_0_at_once() {
    let site = Site::new();
    let mut server = Server::start(&site.root(), &["--workers", "2"]);
    let mut clients: Vec<_> = (0..5).map(|_| server.connect()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
    let start = Instant::now();
    server.signal("INT");
    for client in &mut clients {
        client.expect_closed();
    }
    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(start.elapsed() < HANG_GUARD);
    assert_eq!(server.log().len(), 5);
}

#[test]
fn a_request_arriving_during_shutdown_is_answered_with_close() {
    let site = Site::new();
    let mut server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.1\r\n");
    thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    thread::sleep(Duration::from_millis(200));
    client.send(b"Host: x\r\n\r\n");
    let response = client.response(false);
    assert_eq!(response.body, b"hello\n");
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_closed();
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn a_client_that_never_reads_is_dropped_at_the_shutdown_timeout() {
    let site = Site::new();
    site.write("huge.bin", &vec![3u8; 64 << 20]);
    let mut server = Server::start(&site.root(), &["--shutdown-timeout", "1"]);
    let mut client = server.connect();
    client.send(request("GET", "/huge.bin", &[]).as_bytes());
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit();
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took >= Duration::from_millis(900), "stopped after {took:?}");
    // What the client gets is cut short: the connection ends before the promised length.
    let received = client.read_to_close();
    assert!(received.len() < 64 << 20);
}

#[test]
fn a_second_signal_stops_at_once() {
    let site = Site::new();
    site.write("huge.bin", &vec![3u8; 64 << 20]);
    let mut server = Server::start(&site.root(), &["--shutdown-timeout", "60"]);
    let mut client = server.connect();
    client.send(request("GET", "/huge.bin", &[]).as_bytes());
    thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(start.elapsed() < HANG_GUARD);
}

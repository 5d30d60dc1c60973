//! Half-open connections: clients that vanish without a FIN, simulated by clients that stop in the
//! middle and then sit there holding their socket, never reading, never closing. A client stopped
//! inside a request head gets 408 at the header timeout; one stopped inside a request body is closed
//! at the same timeout; an idle keep-alive connection, or one that never sent a byte, is closed at
//! the keep-alive timeout. Meanwhile others are served; afterwards the server holds exactly the fds
//! it started with. (`tests/http/hostile.rs` and `connections.rs` check the timeouts' lower bounds
//! and the 408 for a head trickling in; this checks that what the server holds is released.)

use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Server, Site, request};
use crate::{fd_count, wait_for_fd_count};

/// How many of each kind of half-open connection.
const EACH: usize = 30;

#[test]
fn half_open_connections_are_closed_by_the_timeouts_and_release_their_fds() {
    let site = Site::new();
    let server = Server::start(
        &site.root(),
        &["--header-timeout", "1", "--keepalive-timeout", "2"],
    );
    let baseline = fd_count(server.pid());
    let start = Instant::now();
    let mut in_head: Vec<Client> = (0..EACH).map(|_| server.connect()).collect();
    for client in &mut in_head {
        client.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Ag");
    }
    let mut in_body: Vec<Client> = (0..EACH).map(|_| server.connect()).collect();
    for client in &mut in_body {
        client
            .send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart of a body");
    }
    let mut idle: Vec<Client> = (0..EACH).map(|_| server.connect()).collect();
    for client in &mut idle {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
    let silent: Vec<Client> = (0..EACH).map(|_| server.connect()).collect();
    // The body's request was answered at once (its body is discarded as it comes).
    for client in &mut in_body {
        assert_eq!(client.response(false).body, b"hello\n");
    }
    // All of them are open now, and others are served meanwhile.
    thread::sleep(Duration::from_millis(300));
    let held = fd_count(server.pid());
    assert!(
        held >= baseline + 2 * EACH,
        "{held} fds held, {baseline} at the start"
    );
    let mut other = server.connect();
    for _ in 0..3 {
        assert_eq!(other.get("/index.html", &[]).status, 200);
    }
    drop(other);

    // The server closes every one of them while the clients still hold their sockets.
    wait_for_fd_count(server.pid(), baseline);
    let closed_after = start.elapsed();
    assert!(
        closed_after >= Duration::from_secs(2),
        "the keep-alive timeout is 2 s, yet all were closed after {closed_after:?}"
    );
    // What each one finds when it looks again.
    for client in &mut in_head {
        let response = client.response(false);
        assert_eq!(response.status, 408);
        assert_eq!(response.header("connection"), Some("close"));
        client.expect_closed();
    }
    for client in in_body.iter_mut().chain(&mut idle) {
        client.expect_closed();
    }
    for mut client in silent {
        client.expect_closed();
    }
    let log = server.log();
    assert_eq!(
        log.iter().filter(|line| line.contains("\" 408 ")).count(),
        EACH,
        "{log:?}"
    );
    let mut fresh = server.connect();
    fresh.send(request("GET", "/a.txt", &["Connection: close"]).as_bytes());
    assert_eq!(fresh.response(false).body, b"hello\n");
}

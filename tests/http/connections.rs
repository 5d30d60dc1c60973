//! Connections under pressure: the keep-alive timeout, a reader that does not read, the connection
//! limit (evicting the least recently active idle connection, pausing when none is idle), running
//! out of file descriptors, select's fd ceiling, and several workers.

use std::io::{ErrorKind, Read};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    Client, HANG_GUARD, Server, Site, exhaust_descriptors, fetch_big_file_side_by_side, request,
};

#[test]
fn an_idle_connection_is_closed_after_the_keepalive_timeout() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--keepalive-timeout", "1"]);
    let mut client = server.connect();
    assert_eq!(client.get("/a.txt", &[]).status, 200);
    let idle_since = Instant::now();
    client.expect_closed();
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
    assert!(idle < HANG_GUARD);

    // A connection that never sends anything is closed the same way, silently.
    let mut silent = server.connect();
    silent.expect_closed();
    // Activity pushes the deadline back.
    let mut busy = server.connect();
    let start = Instant::now();
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(400));
        assert_eq!(busy.get("/a.txt", &[]).status, 200);
    }
    assert!(start.elapsed() > Duration::from_millis(1500));
}

#[test]
fn a_client_that_does_not_read_blocks_nobody() {
    let site = Site::new();
    site.write("huge.bin", &vec![1u8; 32 << 20]);
    // Timeouts long enough for the slowest run (valgrind): the stalled client must outlast the others'
    // requests (send timeout), then read and check 32 MiB before its next request (keep-alive).
    let server = Server::start(&site.root(), &["--keepalive-timeout", "120"]);
    let mut stalled = server.connect();
    stalled.send(request("GET", "/huge.bin", &[]).as_bytes());
    thread::sleep(Duration::from_millis(200));
    // Others are served while the first one's response waits in full socket buffers.
    for _ in 0..3 {
        let mut other = server.connect();
        for _ in 0..5 {
            assert_eq!(other.get("/big.bin", &[]).body.len(), 262_144);
        }
    }
    let response = stalled.response(false);
    assert_eq!(response.body.len(), 32 << 20);
    assert!(response.body.iter().all(|&byte| byte == 1));
    assert_eq!(stalled.get("/a.txt", &[]).status, 200);
}

#[test]
fn at_the_limit_the_least_recently_active_idle_connection_is_closed() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-connections", "3"]);
    let mut first = server.connect();
    let mut second = server.connect();
    let mut third = server.connect();
    for client in [&mut first, &mut second, &mut third] {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
    // The first becomes the most recently active: the second is now the oldest idle one.
    assert_eq!(first.get("/a.txt", &[]).status, 200);
    let mut fourth = server.connect();
    assert_eq!(fourth.get("/a.txt", &[]).status, 200);
    second.expect_closed();
    for client in [&mut first, &mut third, &mut fourth] {
        assert_eq!(client.get("/style.css", &[]).status, 200);
    }
}

#[test]
fn at_the_limit_with_none_idle_accepting_pauses() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--max-connections", "2"]);
    // Two connections in the middle of a request head: neither is idle.
    let mut busy: Vec<Client> = (0..2).map(|_| server.connect()).collect();
    for client in &mut busy {
        client.send(b"GET /a.txt HTTP/1.1\r\n");
    }
    thread::sleep(Duration::from_millis(300));
    let mut waiting = server.connect();
    waiting.send(request("GET", "/style.css", &[]).as_bytes());
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0; 1];
    let early = waiting.stream.read(&mut byte);
    assert!(
        matches!(&early, Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the third connection must wait, got {early:?}"
    );
    // The first busy connection finishes and closes: the waiting one is accepted and served.
    busy[0].send(b"Host: x\r\nConnection: close\r\n\r\n");
    assert_eq!(busy[0].response(false).status, 200);
    busy[0].expect_closed();
    waiting.stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    assert_eq!(waiting.response(false).status, 200);
    busy[1].send(b"Host: x\r\n\r\n");
    assert_eq!(busy[1].response(false).status, 200);
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let site = Site::new();
    let server = Server::start_with_fd_limit(&site.root(), 64, &["--max-connections", "1000"]);
    let (mut open, mut waiting) = exhaust_descriptors(&server);
    assert!(
        open.len() > 30,
        "only {} connections were served",
        open.len()
    );
    server.wait_for_stderr("Too many open files");

    let before = server.cpu_time();
    thread::sleep(Duration::from_secs(3));
    let used = server.cpu_time() - before;
    assert!(
        used < Duration::from_secs(1),
        "the paused server used {used:?} of CPU in 3 s"
    );

    // Descriptors come free: the waiting connection is accepted and served.
    open.truncate(open.len() - 10);
    waiting.stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    assert_eq!(waiting.response(false).body, b"hello\n");
    let mut fresh = server.connect();
    assert_eq!(fresh.get("/a.txt", &[]).status, 200);
}

#[test]
fn select_closes_connections_above_its_ceiling_and_serves_the_rest() {
    // The test process holds ~1030 client sockets: take the hard limit.
    iomux::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    let site = Site::new();
    let server = Server::start(&site.root(), &["--backend", "select", "--quiet"]);
    let mut clients: Vec<Client> = (0..1030).map(|_| server.connect()).collect();
    let stderr = server.wait_for_stderr("FD_SETSIZE");
    assert!(stderr.contains("select's limit of 1024"), "{stderr}");
    // Some of the last connections were closed; the first ones are served.
    let mut closed = 0;
    for client in clients.iter_mut().rev().take(20) {
        client.send(request("GET", "/a.txt", &[]).as_bytes());
        if client.try_response(false).is_err() {
            closed += 1;
        }
    }
    assert!(closed > 0, "no connection above fd 1023 was closed");
    for client in clients.iter_mut().take(20) {
        assert_eq!(client.get("/a.txt", &[]).status, 200);
    }
}

#[test]
fn two_workers_share_the_port() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--workers", "2", "--quiet"]);
    assert!(
        server.first_line.ends_with("workers 2)"),
        "{}",
        server.first_line
    );
    assert!(server.threads() >= 3, "a main thread and two workers");
    fetch_big_file_side_by_side(server.address, 8, 20);
}

#[test]
fn idle_keep_alive_connections_hold_no_buffers() {
    // The test process holds 2,000 client sockets: take the hard limit.
    iomux::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    let site = Site::new();
    let server = Server::start(&site.root(), &["--quiet"]);
    let mut warm = server.connect();
    for _ in 0..20 {
        assert_eq!(warm.get("/big.bin", &[]).status, 200);
    }
    let before = server.rss_kib();
    let count = 2000;
    let mut clients: Vec<Client> = (0..count).map(|_| server.connect()).collect();
    for client in &mut clients {
        client.send(request("GET", "/index.html", &[]).as_bytes());
    }
    for client in &mut clients {
        assert_eq!(client.response(false).status, 200);
    }
    let grown = server.rss_kib().saturating_sub(before);
    // Measured at about 0.2 KiB per connection (the fd table entry, the timer, the idle list);
    // a per-connection read or write buffer would be 16 KiB or more.
    assert!(
        grown * 1024 < count * 2048,
        "{count} idle connections grew the server by {grown} KiB"
    );
}

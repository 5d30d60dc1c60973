//! Peers that never read: a pipelining client that writes requests and reads no response, and a
//! large download nobody reads, with sendfile and with `--no-sendfile`. The server's memory stays
//! bounded, others are served meanwhile, and the send timeout (the keep-alive timeout without
//! progress) closes the connection while the peer still holds it open: the server's fd count comes
//! back to where it started. (`tests/http/hostile.rs` and `connections.rs` check that such clients
//! are still answered in full once they do read.)

use std::io::{ErrorKind, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Server, Site, big_content, request};
use crate::{fd_count, wait_for_fd_count};

/// The most a stalled client may grow the server by: a copy of what it asked for would be many
/// times this.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// Starts a quiet server with a 1 s keep-alive (and so send) timeout, warmed up by a few downloads,
/// and returns it with its fd count and RSS.
fn warm_server(site: &Site, extra: &[&str]) -> (Server, usize, u64) {
    let mut args = vec!["--keepalive-timeout", "1", "--quiet"];
    args.extend_from_slice(extra);
    let server = Server::start(&site.root(), &args);
    let baseline = fd_count(server.pid());
    {
        let mut warm = server.connect();
        for _ in 0..10 {
            assert_eq!(warm.get("/big.bin", &[]).body, big_content());
        }
    }
    wait_for_fd_count(server.pid(), baseline);
    let rss = server.rss_kib();
    (server, baseline, rss)
}

/// Others are served in full while the stalled client holds its connection.
fn others_are_served(server: &Server) {
    let mut other = server.connect();
    for _ in 0..5 {
        assert_eq!(other.get("/big.bin", &[]).body, big_content());
    }
}

#[test]
fn a_pipelining_client_that_never_reads_is_closed_at_the_send_timeout() {
    let site = Site::new();
    let (server, baseline, rss) = warm_server(&site, &[]);
    let mut stalled = server.connect();
    stalled.stream.set_nonblocking(true).unwrap();
    let requests = request("GET", "/big.bin", &[]).repeat(64);
    let mut sent = 0usize;
    let mut blocked_since = None;
    let start = Instant::now();
    // Requests for 256 KiB responses, none read, until the server stops taking them (writing has
    // been blocked for 300 ms), it closes the connection, or 5 s have passed.
    while start.elapsed() < Duration::from_secs(5) {
        match stalled.stream.write(requests.as_bytes()) {
            Ok(written) => {
                sent += written;
                blocked_since = None;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            // Closed by the send timeout already (on a slow machine).
            Err(_) => break,
        }
    }
    assert!(sent > 0);
    let grown = server.rss_kib().saturating_sub(rss);
    assert!(
        grown < MAX_GROWTH_KIB,
        "{sent} bytes of unread requests grew the server by {grown} KiB"
    );
    others_are_served(&server);
    // The client still holds its socket and reads nothing: the server closes its side anyway.
    wait_for_fd_count(server.pid(), baseline);
    stalled.stream.set_nonblocking(false).unwrap();
    let received = stalled.read_to_close();
    let asked = sent / request("GET", "/big.bin", &[]).len();
    assert!(
        received.len() < asked * big_content().len(),
        "all {asked} responses came although the client never read"
    );
    assert_eq!(server.connect().get("/a.txt", &[]).status, 200);
}

fn a_large_download_never_read_is_closed_at_the_send_timeout(extra: &[&str]) {
    const LENGTH: usize = 32 << 20;
    let site = Site::new();
    site.write("huge.bin", &vec![5u8; LENGTH]);
    let (server, baseline, rss) = warm_server(&site, extra);
    let mut stalled = server.connect();
    stalled.send(request("GET", "/huge.bin", &[]).as_bytes());
    thread::sleep(Duration::from_millis(200));
    let grown = server.rss_kib().saturating_sub(rss);
    assert!(
        grown < MAX_GROWTH_KIB,
        "{extra:?}: an unread 32 MiB download grew the server by {grown} KiB"
    );
    others_are_served(&server);
    wait_for_fd_count(server.pid(), baseline);
    // What was in the socket buffers arrives, then the end: less than the promised length, so the
    // client can tell the response was cut.
    let received = stalled.read_to_close();
    let head_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("the head was sent")
        + 4;
    let head = String::from_utf8_lossy(&received[..head_end]);
    assert!(
        head.contains(&format!("Content-Length: {LENGTH}\r\n")),
        "{head}"
    );
    assert!(received.len() - head_end < LENGTH, "{extra:?}");
    assert!(received[head_end..].iter().all(|&byte| byte == 5));
    assert_eq!(
        Client::connect(server.address).get("/a.txt", &[]).status,
        200
    );
}

#[test]
fn a_large_download_never_read_is_closed_at_the_send_timeout_with_sendfile() {
    a_large_download_never_read_is_closed_at_the_send_timeout(&[]);
}

#[test]
fn a_large_download_never_read_is_closed_at_the_send_timeout_without_sendfile() {
    a_large_download_never_read_is_closed_at_the_send_timeout(&["--no-sendfile"]);
}

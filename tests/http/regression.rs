//! Regressions, each named after what broke.

use std::io::Read;
use std::time::Duration;

use socket2::SockRef;

use crate::support::{Server, Site, request};

/// A peer that reset its connection before the server wrote its responses made the write fail; the
/// responses stayed in the worker's shared output buffer and went out at the start of the next
/// connection's answer: another client's response heads and small-file bodies, then a desynchronised
/// stream. Found by the fault injection (`tests/faults/resets.rs`: "GET / HTTP/9.9" was answered
/// "HTTP/1.1 200").
#[test]
fn responses_to_a_reset_peer_never_reach_the_next_connection() {
    let site = Site::new();
    site.write("secret.txt", b"for the first client only\n");
    let server = Server::start(&site.root(), &["--quiet"]);
    for _ in 0..20 {
        // The requests and the reset (SO_LINGER 0, then close) arrive together — loopback delivers
        // both before the server wakes — so the server reads the requests, answers them into its
        // buffer, and the write fails.
        let mut first = server.connect();
        first.send(request("GET", "/secret.txt", &[]).repeat(10).as_bytes());
        SockRef::from(&first.stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(first);

        let mut second = server.connect();
        second.send(request("GET", "/a.txt", &["Connection: close"]).as_bytes());
        let mut received = Vec::new();
        second.stream.read_to_end(&mut received).unwrap();
        let text = String::from_utf8_lossy(&received);
        assert!(!text.contains("first client"), "{text}");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello\n"), "{text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    }
}

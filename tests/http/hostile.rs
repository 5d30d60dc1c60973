//! What a hostile or broken client gets: the limits (414, 431), malformed requests (400), methods
//! (405 with `Allow`, 501), framing attacks (`Transfer-Encoding`, bodies, 413), pipelining, the
//! slowloris header timeout (408, not restarted per byte) and a file truncated while it is sent.

use std::io::{ErrorKind, Read};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{HANG_GUARD, Server, Site, request};

/// Sends `bytes` on a new connection and returns the one response, then checks the server closes.
#[track_caller]
fn answer_and_close(server: &Server, bytes: &[u8]) -> crate::support::Response {
    let mut client = server.connect();
    client.send(bytes);
    let response = client.response(bytes.starts_with(b"HEAD"));
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "a rejected request closes: {:?}",
        response.status_line
    );
    let rest = client.read_to_close();
    assert!(
        rest.is_empty(),
        "nothing after the error response: {rest:?}"
    );
    response
}

#[test]
fn an_overlong_request_line_is_414_even_before_it_ends() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    assert_eq!(answer_and_close(&server, long.as_bytes()).status, 414);
    // No end of line at all: the limit is checked as the bytes arrive.
    let endless = format!("GET /{}", "a".repeat(4200));
    assert_eq!(answer_and_close(&server, endless.as_bytes()).status, 414);
    // 414 is checked first, even when the head is also too large.
    let both = format!("GET /{}{}", "a".repeat(4200), "b".repeat(9000));
    assert_eq!(answer_and_close(&server, both.as_bytes()).status, 414);
}

#[test]
fn an_overlong_head_is_431() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let big_field = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(answer_and_close(&server, big_field.as_bytes()).status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for index in 0..200 {
        many.push_str(&format!("X-{index}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(answer_and_close(&server, many.as_bytes()).status, 431);
}

#[test]
fn malformed_requests_are_400() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..], // HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS hello
        b"GET / HTTP/1.1\r\nHost: x\r\n\x00\r\n\r\n",
    ] {
        let response = answer_and_close(&server, bytes);
        assert_eq!(response.status, 400, "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn other_methods_are_405_with_allow_and_unknown_ones_501() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        let response = answer_and_close(&server, request(method, "/a.txt", &[]).as_bytes());
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
    }
    for method in ["BREW", "get", "PROPFIND"] {
        let response = answer_and_close(&server, request(method, "/a.txt", &[]).as_bytes());
        assert_eq!(response.status, 501, "{method}");
    }
}

#[test]
fn transfer_encoding_is_refused_and_never_smuggles_a_request() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let smuggled = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n0\r\n\r\nGET /.hidden HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(answer_and_close(&server, smuggled).status, 400);
    let both = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(answer_and_close(&server, both).status, 400);
    let identity = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n";
    assert_eq!(answer_and_close(&server, identity).status, 400);
    let log = server.wait_for_log_lines(3);
    assert!(
        !log.iter().any(|line| line.contains(".hidden")),
        "the smuggled request was never parsed: {log:?}"
    );
}

#[test]
fn a_small_body_is_discarded_and_never_parsed_as_a_request() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    // The body looks like a request for a hidden file; it must be skipped, not answered.
    let body = "GET /.hidden HTTP/1.1\r\nHost: x\r\n\r\n";
    client.send(
        format!(
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(client.response(false).body, b"hello\n");
    assert_eq!(client.get("/style.css", &[]).status, 200);

    // A body that arrives in pieces, after the response was sent.
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n");
    assert_eq!(client.response(false).body, b"hello\n");
    let chunk = vec![b'G'; 16 * 1024];
    for _ in 0..4 {
        client.send(&chunk);
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.get("/a.txt", &[]).body, b"hello\n");
    let log = server.wait_for_log_lines(4);
    assert!(!log.iter().any(|line| line.contains(".hidden")), "{log:?}");
    assert_eq!(
        log.iter().filter(|line| line.contains("\" 200 ")).count(),
        4,
        "{log:?}"
    );
}

#[test]
fn a_large_body_is_413() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n");
    // The client goes on sending its body; the server's drain lets it read the answer anyway.
    client.send(&vec![b'x'; 65537]);
    let response = client.response(false);
    assert_eq!(response.status, 413);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.read_to_close().is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    let mut client = server.connect();
    let targets = [
        "/a.txt",
        "/big.bin",
        "/missing",
        "/style.css",
        "/limit.bin",
        "/sub",
        "/a.txt",
    ];
    let mut batch = String::new();
    for target in targets {
        batch.push_str(&request("GET", target, &[]));
    }
    batch.push_str(&request("HEAD", "/a.txt", &[]));
    client.send(batch.as_bytes());
    let expected = [200, 200, 404, 200, 200, 301, 200];
    for (target, status) in targets.iter().zip(expected) {
        let response = client.response(false);
        assert_eq!(response.status, status, "{target}");
        if *target == "/big.bin" {
            assert_eq!(response.body, crate::support::big_content());
        }
    }
    let head = client.response(true);
    assert_eq!(head.header("content-length"), Some("6"));

    // Many small requests in one write: all answered, in order, none lost.
    let mut client = server.connect();
    let mut batch = String::new();
    for index in 0..300 {
        batch.push_str(&request("GET", &format!("/a.txt?{index}"), &[]));
    }
    client.send(batch.as_bytes());
    for _ in 0..300 {
        assert_eq!(client.response(false).body, b"hello\n");
    }
    let log = server.wait_for_log_lines(308);
    let order: Vec<usize> = log
        .iter()
        .filter_map(|line| line.split("/a.txt?").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, (0..300).collect::<Vec<_>>());
}

#[test]
fn garbage_and_abrupt_closes_leave_the_server_serving() {
    let site = Site::new();
    let server = Server::start(&site.root(), &[]);
    for bytes in [
        &b"\r\n\r\n\r\n"[..],
        b"\xff\xfe\xfd",
        b"GET",
        b"GET / HTTP/1.1\r\nHost: x\r\n",
    ] {
        let mut client = server.connect();
        client.send(bytes);
        drop(client);
    }
    // A client that resets the connection mid-response.
    let mut client = server.connect();
    client.send(request("GET", "/big.bin", &[]).as_bytes());
    let mut first = [0; 100];
    client.stream.read_exact(&mut first).unwrap();
    drop(client);
    assert_eq!(server.connect().get("/a.txt", &[]).status, 200);
}

#[test]
fn slowloris_gets_408_after_the_header_timeout_from_the_first_byte() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--header-timeout", "1"]);
    let mut client = server.connect();
    let start = Instant::now();
    // One byte every 100 ms, for up to 5 s: if every byte restarted the timer, no 408 would come.
    let head = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    client.stream.set_nonblocking(true).unwrap();
    let mut received = Vec::new();
    let mut answered_at = None;
    for &byte in head.iter() {
        if std::io::Write::write_all(&mut client.stream, &[byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        let mut chunk = [0; 1024];
        match client.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => {
                received.extend_from_slice(&chunk[..read]);
                answered_at.get_or_insert_with(|| start.elapsed());
                if received.windows(4).any(|window| window == b"\r\n\r\n") {
                    break;
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let answered_at = answered_at.expect("a 408 came while the head was still trickling in");
    assert!(answered_at >= Duration::from_secs(1), "{answered_at:?}");
    assert!(answered_at < HANG_GUARD);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"), "{text}");
    server.wait_for_log("\" 408 ");
}

#[test]
fn a_file_truncated_while_being_sent_closes_the_connection() {
    for flags in [&[][..], &["--no-sendfile"][..]] {
        let site = Site::new();
        let length = 64 << 20;
        let path = site.write("huge.bin", &vec![7u8; length]);
        let server = Server::start(&site.root(), flags);
        let mut client = server.connect();
        client.send(request("GET", "/huge.bin", &[]).as_bytes());
        let mut head = [0; 4096];
        let read = client.stream.read(&mut head).unwrap();
        let text = String::from_utf8_lossy(&head[..read]).into_owned();
        assert!(
            text.contains(&format!("Content-Length: {length}\r\n")),
            "{text}"
        );
        // The client stalls; meanwhile the file shrinks to 1 MiB.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let rest = client.read_to_close();
        let body = read - text.find("\r\n\r\n").unwrap() - 4 + rest.len();
        assert!(
            body < length,
            "{flags:?}: the response was padded or lied about: {body} bytes"
        );
        if flags.contains(&"--no-sendfile") {
            // Copied through user space: what was sent is what the file held. (With sendfile the
            // socket buffer holds references to the file's pages, so bytes already queued past the
            // new end go out as the kernel left those pages; only the length can be promised.)
            assert!(
                rest.iter().all(|&byte| byte == 7),
                "never padded with other bytes"
            );
        }
        server.wait_for_stderr("shrank");
        assert_eq!(server.connect().get("/a.txt", &[]).status, 200);
    }
}

#[test]
fn a_pipelining_client_that_never_reads_cannot_grow_the_server() {
    let site = Site::new();
    let server = Server::start(&site.root(), &["--quiet"]);
    let before = server.rss_kib();
    let mut client = server.connect();
    client.stream.set_nonblocking(true).unwrap();
    let requests = request("GET", "/big.bin", &[]).repeat(64);
    let mut sent = 0usize;
    let mut blocked_since = None;
    let start = Instant::now();
    // Write requests for 256 KiB responses without reading any, until writing has been blocked for
    // a second (the server stopped reading) or 5 s have passed.
    while start.elapsed() < Duration::from_secs(5) {
        match std::io::Write::write(&mut client.stream, requests.as_bytes()) {
            Ok(written) => {
                sent += written;
                blocked_since = None;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("writing requests: {error}"),
        }
    }
    assert!(
        blocked_since.is_some(),
        "the server kept reading {sent} bytes of requests"
    );
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "the server grew by {grown} KiB");
    // Everything asked for is still answered, in order, once the client reads.
    client.stream.set_nonblocking(false).unwrap();
    let asked = sent / request("GET", "/big.bin", &[]).len();
    for _ in 0..asked.min(20) {
        assert_eq!(client.response(false).body.len(), 262_144);
    }
}

//! The HTTP server's steady state allocates nothing per request: a counting global allocator watches
//! an in-process server answer thousands of keep-alive requests (small files cached and not, a 304, a
//! 404, a large file through `sendfile`) while the client loop itself allocates nothing. One test in its own
//! binary, so no other test's allocations are counted.

use std::alloc::System;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use iomux::http::{Config, Options, Server};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts every allocation in the process (the system allocator underneath).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and reallocations so far, over all threads.
fn allocations() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// Sends `request` and reads the response into `buffer` without allocating: the head up to its empty
/// line, then the `Content-Length` bytes of body. Returns the status.
fn exchange(stream: &mut TcpStream, request: &[u8], buffer: &mut [u8]) -> u16 {
    stream.write_all(request).unwrap();
    let mut filled = 0;
    let head_end = loop {
        let read = stream.read(&mut buffer[filled..]).unwrap();
        assert!(read > 0, "the server closed the connection");
        filled += read;
        if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let body: usize = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .map_or(0, |length| length.parse().unwrap());
    let body = if status == 304 { 0 } else { body };
    let mut have = filled - head_end;
    while have < body {
        let read = stream.read(&mut buffer[..]).unwrap();
        assert!(read > 0, "the server closed the connection");
        have += read;
    }
    assert_eq!(have, body, "one response at a time");
    status
}

#[test]
fn keep_alive_requests_allocate_nothing_in_the_steady_state() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("d")).unwrap();
    std::fs::write(root.path().join("small.txt"), vec![b's'; 1000]).unwrap();
    std::fs::write(root.path().join("d/deep.txt"), vec![b'd'; 1000]).unwrap();
    std::fs::write(root.path().join("large.bin"), vec![b'l'; 200_000]).unwrap();
    // Settled, so the small files are served from the worker's cache (2 s after their last change);
    // one written now is read afresh for every request.
    std::thread::sleep(Duration::from_millis(2_200));
    std::fs::write(root.path().join("fresh.txt"), vec![b'f'; 1000]).unwrap();
    let config = Config {
        quiet: true,
        ..Config::new(root.path())
    };
    let running = Server::bind(config, Options::new("127.0.0.1:0".parse().unwrap()))
        .unwrap()
        .start()
        .unwrap();
    let mut stream = TcpStream::connect(running.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buffer = vec![0u8; 256 * 1024];

    let small = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let large = b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    let missing = b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
    let deep = b"GET /d/deep.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let fresh = b"GET /fresh.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(exchange(&mut stream, small, &mut buffer), 200);
    let etag_line = {
        let text = std::str::from_utf8(&buffer[..1000]).unwrap_or("");
        let start = text.find("ETag: ").unwrap();
        let end = start + text[start..].find("\r\n").unwrap();
        format!(
            "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {}\r\n\r\n",
            &text[start + 6..end]
        )
    };
    let conditional = etag_line.as_bytes();
    let round = |stream: &mut TcpStream, buffer: &mut [u8]| {
        assert_eq!(exchange(stream, small, buffer), 200);
        assert_eq!(exchange(stream, conditional, buffer), 304);
        let not_found = exchange(stream, missing, buffer);
        assert_eq!(not_found, 404);
        assert_eq!(exchange(stream, large, buffer), 200);
        assert_eq!(exchange(stream, deep, buffer), 200);
        assert_eq!(exchange(stream, fresh, buffer), 200);
    };
    // Warm up: buffers, the pool and the timer heap reach their size.
    for _ in 0..50 {
        round(&mut stream, &mut buffer);
    }
    let before = allocations();
    let rounds = 500;
    for _ in 0..rounds {
        round(&mut stream, &mut buffer);
    }
    let allocated = allocations() - before;
    // A few are allowed for once-a-second work (the Date cache); one per request would be 3,000.
    assert!(
        allocated < 20,
        "{allocated} allocations for {} requests",
        rounds * 6
    );
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

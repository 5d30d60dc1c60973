//! A core subset of the protocol on every backend: each case is a plain `fn(backend: &str)`, and
//! `for_each_backend!` turns it into one test per backend, named `backends::<case>::<backend>`.

use std::time::{Duration, Instant};

use crate::support::{HANG_GUARD, Server, Site, big_content, fetch_big_file_side_by_side, request};

macro_rules! for_each_backend {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn select() {
                    super::$case("select");
                }
                #[test]
                fn poll() {
                    super::$case("poll");
                }
                #[test]
                fn epoll() {
                    super::$case("epoll");
                }
            }
        )*
    };
}

for_each_backend!(
    keep_alive_pipelining_and_large_files,
    errors_and_confinement,
    slow_readers_and_concurrent_clients,
    timeouts,
    graceful_shutdown,
);

fn start(site: &Site, backend: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--backend", backend];
    args.extend_from_slice(extra);
    let server = Server::start(&site.root(), &args);
    assert!(
        server.first_line.contains(&format!("(backend {backend}, ")),
        "{}",
        server.first_line
    );
    server
}

fn keep_alive_pipelining_and_large_files(backend: &str) {
    let site = Site::new();
    let server = start(&site, backend, &[]);
    let mut client = server.connect();
    for _ in 0..3 {
        assert_eq!(client.get("/a.txt", &[]).body, b"hello\n");
    }
    let batch: String = ["/a.txt", "/big.bin", "/style.css"]
        .iter()
        .map(|target| request("GET", target, &[]))
        .collect();
    client.send(batch.as_bytes());
    assert_eq!(client.response(false).body, b"hello\n");
    assert_eq!(client.response(false).body, big_content());
    assert_eq!(client.response(false).status, 200);
    let part = client.get("/big.bin", &["Range: bytes=5-9"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &big_content()[5..10]);
}

fn errors_and_confinement(backend: &str) {
    let site = Site::new();
    let server = start(&site, backend, &[]);
    let mut client = server.connect();
    assert_eq!(client.get("/missing", &[]).status, 404);
    assert_eq!(client.get("/../outside/secret.txt", &[]).status, 400);
    assert_eq!(client.get("/outside-link", &[]).status, 404);
    assert_eq!(client.get("/.hidden", &[]).status, 404);
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n");
    let refused = client.response(false);
    assert_eq!(refused.status, 405);
    assert_eq!(refused.header("allow"), Some("GET, HEAD"));
    client.expect_closed();
    let mut client = server.connect();
    client.send(format!("GET /{} HTTP/1.1\r\n", "a".repeat(5000)).as_bytes());
    assert_eq!(client.response(false).status, 414);
    client.expect_closed();
}

fn slow_readers_and_concurrent_clients(backend: &str) {
    let site = Site::new();
    site.write("huge.bin", &vec![9u8; 16 << 20]);
    let server = start(&site, backend, &["--quiet"]);
    let mut stalled = server.connect();
    stalled.send(request("GET", "/huge.bin", &[]).as_bytes());
    fetch_big_file_side_by_side(server.address, 6, 10);
    let response = stalled.response(false);
    assert_eq!(response.body.len(), 16 << 20);
}

fn timeouts(backend: &str) {
    let site = Site::new();
    let server = start(
        &site,
        backend,
        &["--header-timeout", "1", "--keepalive-timeout", "1"],
    );
    let mut idle = server.connect();
    assert_eq!(idle.get("/a.txt", &[]).status, 200);
    let mut partial = server.connect();
    let start = Instant::now();
    partial.send(b"GET /a.txt HTTP/1.1\r\n");
    assert_eq!(partial.response(false).status, 408);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < HANG_GUARD,
        "{waited:?}"
    );
    partial.expect_closed();
    idle.expect_closed();
}

fn graceful_shutdown(backend: &str) {
    let site = Site::new();
    let mut server = start(&site, backend, &[]);
    let mut client = server.connect();
    client.send(request("GET", "/big.bin", &[]).as_bytes());
    // Once the request is being answered (a request not yet read when the signal comes is not).
    server.wait_for_log("/big.bin");
    server.signal("TERM");
    assert_eq!(client.response(false).body, big_content());
    assert_eq!(server.wait_exit().code(), Some(0));
}

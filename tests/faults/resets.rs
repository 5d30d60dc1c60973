//! Peers that reset (`SO_LINGER` 0, so the kernel sends RST) at every stage of an HTTP exchange —
//! mid-response on a large file (after reading a few KiB), with a request head half sent, with
//! pipelined responses waiting, after an error response while the server drains — on every backend,
//! with sendfile and with `--no-sendfile`. Meanwhile another client downloads the large file whole
//! again and again; afterwards the server holds exactly the fds it started with and has printed
//! nothing (a peer going away is no error worth reporting). Echo's resets are in `tests/echo.rs`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::support::{Client, Server, Site, request};
use crate::{pattern, reset, wait_for_fd_count};

/// The large file: far more than the socket buffers hold, so a reset always lands mid-response.
const LARGE: usize = 8 << 20;

/// One of the ways a peer resets, by index.
fn reset_once(server: &Server, kind: usize) {
    let mut client = server.connect();
    match kind % 5 {
        // Mid-response: the head and a few KiB of a large body read, the rest in flight.
        0 => {
            client.send(request("GET", "/large.bin", &[]).as_bytes());
            let mut start = [0; 4096];
            client.stream.read_exact(&mut start).unwrap();
        }
        // Mid-response, having read nothing: the server is blocked on full buffers.
        1 => client.send(request("GET", "/large.bin", &[]).as_bytes()),
        // Half a head: the header timeout is running.
        2 => client.send(b"GET /large.bin HTTP/1.1\r\nHost: x\r\nAcc"),
        // Many pipelined requests, none of the responses read.
        3 => client.send(request("GET", "/big.bin", &[]).repeat(20).as_bytes()),
        // An error response that closes: the server shut its write side and is draining.
        _ => {
            client.send(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n");
            let mut head = [0; 12];
            client.stream.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 400");
        }
    }
    reset(client.stream);
}

fn resets_at_every_stage_leave_nothing_behind(backend: &str, extra: &[&str]) {
    let site = Site::new();
    let content = Arc::new(pattern(LARGE, 17));
    site.write("large.bin", &content);
    let mut args = vec!["--backend", backend, "--quiet"];
    args.extend_from_slice(extra);
    let server = Server::start(&site.root(), &args);
    let baseline = crate::fd_count(server.pid());

    // A well-behaved client downloads the large file whole while the others reset.
    let stop = Arc::new(AtomicBool::new(false));
    let downloader = {
        let address = server.address;
        let stop = Arc::clone(&stop);
        let expected = Arc::clone(&content);
        thread::spawn(move || {
            let mut client = Client::connect(address);
            let mut downloads = 0;
            while !stop.load(Ordering::Relaxed) || downloads == 0 {
                let response = client.get("/large.bin", &[]);
                assert_eq!(response.status, 200);
                assert!(
                    response.body == *expected,
                    "a download differs from the file"
                );
                downloads += 1;
            }
            downloads
        })
    };
    for kind in 0..100 {
        reset_once(&server, kind);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(downloader.join().expect("the downloader") > 0);

    wait_for_fd_count(server.pid(), baseline);
    let mut client = server.connect();
    assert_eq!(client.get("/a.txt", &[]).body, b"hello\n");
    assert!(client.get("/large.bin", &[]).body == *content);
    assert_eq!(server.stderr(), "", "{backend} {extra:?}");
}

macro_rules! for_each_backend {
    ($($name:ident: $flags:expr),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn select() {
                    super::resets_at_every_stage_leave_nothing_behind("select", $flags);
                }

                #[test]
                fn poll() {
                    super::resets_at_every_stage_leave_nothing_behind("poll", $flags);
                }

                #[test]
                fn epoll() {
                    super::resets_at_every_stage_leave_nothing_behind("epoll", $flags);
                }
            }
        )*
    };
}

for_each_backend!(
    sendfile: &[],
    no_sendfile: &["--no-sendfile"],
);

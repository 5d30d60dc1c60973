//! The HTTP server as a library: bind, start, serve, shut down through a [`ShutdownHandle`], in
//! process (the end-to-end tests of the command live in the workspace's root `tests/`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use iomux::http::{Config, Error, Options, Server};

const HANG_GUARD: Duration = Duration::from_secs(30);

fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello").unwrap();
    dir
}

fn get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_until_shut_down_through_its_handle() {
    let root = root();
    let options = Options {
        workers: 2,
        ..Options::new("127.0.0.1:0".parse().unwrap())
    };
    let config = Config {
        quiet: true,
        ..Config::new(root.path())
    };
    let server = Server::bind(config, options).unwrap();
    assert_eq!(server.workers(), 2);
    assert_ne!(server.local_addr().port(), 0, "port 0 is resolved at bind");
    let running = server.start().unwrap();
    let address = running.local_addr();
    for _ in 0..10 {
        assert!(get(address, "/hello.txt").ends_with("\r\n\r\nhello"));
    }
    let handle = running.shutdown_handle();
    let idle = TcpStream::connect(address).unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    while handle.connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "the idle connection was never counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.shutdown();
    handle.shutdown();
    running.wait().unwrap();
    assert_eq!(handle.connections(), 0);
    drop(idle);
    assert!(
        TcpStream::connect(address).is_err(),
        "the listeners are closed"
    );
}

#[test]
fn a_busy_address_is_a_bind_error_naming_it() {
    let root = root();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let error = Server::bind(Config::new(root.path()), Options::new(address)).unwrap_err();
    assert!(matches!(error, Error::Bind { .. }), "{error}");
    assert!(error.to_string().contains(&address.to_string()), "{error}");
}

#[test]
fn a_missing_root_is_a_root_error() {
    let error = Server::bind(
        Config::new("/nonexistent/iomux-root"),
        Options::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap_err();
    assert!(matches!(error, Error::Root { .. }), "{error}");
}

//! Running out of file descriptors (`prlimit --nofile=N:N`): the server pauses accepting without
//! spinning (under 1 s of CPU over a 3 s window, from `/proc/PID/stat`), reports it once per worker,
//! keeps serving what it accepted, and recovers — every fd given back — once descriptors free up.
//! `tests/http/connections.rs` and `tests/echo.rs` cover one worker (http on epoll; echo on every
//! model × backend); this adds http's select and poll backends and two workers for both servers.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use crate::support::echo::{self as echo_support, EchoServer, Launch};
use crate::support::{Client, HANG_GUARD, Server, Site, exhaust_descriptors};
use crate::{fd_count, wait_for_fd_count};

/// How long the exhausted server is watched, and the most CPU time it may use meanwhile.
const WINDOW: Duration = Duration::from_secs(3);
const MAX_CPU: Duration = Duration::from_secs(1);

fn http_runs_out_of_descriptors_and_recovers(args: &[&str], workers: usize) {
    let site = Site::new();
    let mut all = vec!["--max-connections", "1000", "--quiet"];
    all.extend_from_slice(args);
    let server = Server::start_with_fd_limit(&site.root(), 64, &all);
    let baseline = fd_count(server.pid());
    let (open, mut waiting) = exhaust_descriptors(&server);
    server.wait_for_stderr("Too many open files");

    let before = server.cpu_time();
    thread::sleep(WINDOW);
    let used = server.cpu_time() - before;
    assert!(
        used < MAX_CPU,
        "{args:?}: the paused server used {used:?} of CPU in {WINDOW:?}"
    );
    // Reported once per worker, not once per retry.
    let reports = server
        .stderr()
        .matches("accepting connections failed")
        .count();
    assert!(
        (1..=workers).contains(&reports),
        "{args:?}: {reports} reports: {}",
        server.stderr()
    );

    // Every connection closes: the waiting one is accepted and served, and every fd comes back.
    drop(open);
    waiting.stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    assert_eq!(waiting.response(false).body, b"hello\n");
    drop(waiting);
    wait_for_fd_count(server.pid(), baseline);
    assert_eq!(
        Client::connect(server.address).get("/a.txt", &[]).status,
        200
    );
}

#[test]
fn http_on_select_runs_out_of_descriptors_and_recovers() {
    http_runs_out_of_descriptors_and_recovers(&["--backend", "select"], 1);
}

#[test]
fn http_on_poll_runs_out_of_descriptors_and_recovers() {
    http_runs_out_of_descriptors_and_recovers(&["--backend", "poll"], 1);
}

#[test]
fn http_with_two_workers_runs_out_of_descriptors_and_recovers() {
    http_runs_out_of_descriptors_and_recovers(&["--workers", "2"], 2);
}

fn echo_with_two_workers_runs_out_of_descriptors_and_recovers(model: &str) {
    /// Its own dozen or two fds and a few dozen connections.
    const LIMIT: u32 = 48;
    /// More clients than it has fds for; the kernel queues the rest in the listen backlogs.
    const CLIENTS: usize = 70;
    let server = EchoServer::start_with(
        Launch::FdLimit(LIMIT),
        &["--model", model, "--workers", "2"],
    );
    let baseline = server.fd_count();
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.connect()).collect();
    server.wait_for_stderr("Too many open files");
    let before = server.cpu_time();
    thread::sleep(WINDOW);
    let used = server.cpu_time().saturating_sub(before);
    assert!(
        used < MAX_CPU,
        "{model}: the server used {used:?} of CPU in {WINDOW:?} while out of fds"
    );
    let reports = server.stderr().matches("accept failed").count();
    assert!((1..=2).contains(&reports), "{}", server.stderr());
    // The connections it accepted are served. (Which ones: each worker accepted the first of its
    // own backlog, but one worker may have taken every fd before the other accepted any.)
    let served = clients.iter_mut().take(20).any(|client| {
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        client.write_all(b"served").unwrap();
        let mut reply = [0; 6];
        client.read_exact(&mut reply).is_ok() && &reply == b"served"
    });
    assert!(
        served,
        "{model}: none of the first 20 connections was served"
    );
    drop(clients);
    server.wait_for_stderr("accepting again");
    server.wait_for_fd_count(baseline);
    let mut client = server.connect();
    assert_eq!(
        echo_support::round_trip(&mut client, b"recovered"),
        b"recovered"
    );
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn echo_callback_with_two_workers_runs_out_of_descriptors_and_recovers() {
    echo_with_two_workers_runs_out_of_descriptors_and_recovers("callback");
}

#[test]
fn echo_coroutine_with_two_workers_runs_out_of_descriptors_and_recovers() {
    echo_with_two_workers_runs_out_of_descriptors_and_recovers("coroutine");
}

//! `SIGTERM` during large transfers, seen by real clients: curl (`--limit-rate`, so it is still
//! downloading) and Python's `http.client` (stalling mid-body). A transfer that can finish within the
//! shutdown timeout finishes whole and the clients report success; one cut at the shutdown timeout
//! is reported by both as cut — curl exits 18 ("partial file"), `http.client` raises
//! `IncompleteRead` — never as a complete response. The server exits 0 either way; with sendfile and
//! with `--no-sendfile`. (`tests/http/shutdown.rs` checks the same with a raw client.)

use std::thread;
use std::time::Duration;

use crate::support::{Server, Site, sha256};
use crate::{assert_downloads_cut, curl_download, pattern, python_download, python_outcome};

fn sigterm_lets_transfers_in_flight_finish(extra: &[&str]) {
    const LENGTH: usize = 16 << 20;
    let site = Site::new();
    let content = pattern(LENGTH, 11);
    site.write("large.bin", &content);
    let output = site.root().join("../curl.out");
    let mut server = Server::start(&site.root(), extra);
    // curl needs about 2 s at 8 MiB/s; Python stalls 1 s, then reads the rest at full speed: both
    // within the default shutdown timeout of 10 s.
    let curl = curl_download(&server.url("/large.bin"), &output, "8M");
    let python = python_download(server.address, "/large.bin", 1.0, LENGTH);
    server.wait_for_log_lines(2);
    thread::sleep(Duration::from_millis(200));
    server.signal("TERM");

    let (status, lines) = curl.finish();
    assert_eq!(status.code(), Some(0), "{extra:?}: curl {lines:?}");
    assert_eq!(lines, [format!("200 {LENGTH}")]);
    assert!(
        std::fs::read(&output).unwrap() == content,
        "{extra:?}: curl's copy differs"
    );
    assert_eq!(
        python_outcome(python),
        ["complete", &LENGTH.to_string(), &sha256(&content)]
    );
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.stderr());
}

#[test]
fn sigterm_lets_transfers_in_flight_finish_with_sendfile() {
    sigterm_lets_transfers_in_flight_finish(&[]);
}

#[test]
fn sigterm_lets_transfers_in_flight_finish_without_sendfile() {
    sigterm_lets_transfers_in_flight_finish(&["--no-sendfile"]);
}

fn transfers_cut_at_the_shutdown_timeout_are_seen_as_cut(extra: &[&str]) {
    const LENGTH: usize = 64 << 20;
    let site = Site::new();
    site.write("huge.bin", &pattern(LENGTH, 13));
    let output = site.root().join("../curl.out");
    let mut args = vec!["--shutdown-timeout", "1"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&site.root(), &args);
    // curl would need 16 s at 4 MiB/s; Python stalls 4 s: neither is done when the server stops.
    let curl = curl_download(&server.url("/huge.bin"), &output, "4M");
    let python = python_download(server.address, "/huge.bin", 4.0, LENGTH);
    server.wait_for_log_lines(2);
    thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.stderr());

    assert_downloads_cut(curl, python, &output, LENGTH, extra);
}

#[test]
fn transfers_cut_at_the_shutdown_timeout_are_seen_as_cut_with_sendfile() {
    transfers_cut_at_the_shutdown_timeout_are_seen_as_cut(&[]);
}

#[test]
fn transfers_cut_at_the_shutdown_timeout_are_seen_as_cut_without_sendfile() {
    transfers_cut_at_the_shutdown_timeout_are_seen_as_cut(&["--no-sendfile"]);
}

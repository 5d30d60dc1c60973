//! Document-root files that change while they are being sent, with sendfile and with
//! `--no-sendfile`. A file truncated mid-response closes the connection: curl exits 18 and Python's
//! `http.client` raises `IncompleteRead`, and a pipelined response after it is never sent inside the
//! cut body. A file replaced (renamed over) mid-response is sent whole as it was when the response
//! began; one that grows is sent at the length its head announced — in both cases the connection
//! stays usable and the next response is framed right. Content-Length is never lied about.
//! (`tests/http/hostile.rs` checks the truncated case with a raw client.)

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use crate::support::{Client, Server, Site, request};
use crate::{
    assert_downloads_cut, curl_download, fd_count, pattern, python_download, wait_for_fd_count,
};

/// Far more than the socket buffers hold, so a client that stops reading stops the server mid-body.
const LENGTH: usize = 32 << 20;

/// Sends `GET path` (and `then`, pipelined), reads the head and the first 64 KiB, then stops
/// reading for a moment so the server waits on full buffers; returns the head's length and what
/// was read.
fn start_download(client: &mut Client, path: &str, then: &str) -> (usize, Vec<u8>) {
    client.send(format!("{}{then}", request("GET", path, &[])).as_bytes());
    let mut first = vec![0; 64 * 1024];
    client.stream.read_exact(&mut first).unwrap();
    let head_len = first
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("the head fits in 64 KiB")
        + 4;
    thread::sleep(Duration::from_millis(300));
    (head_len, first)
}

fn a_truncated_file_is_reported_as_cut_by_curl_and_python(extra: &[&str]) {
    const HUGE: usize = 64 << 20;
    let site = Site::new();
    let path = site.write("huge.bin", &pattern(HUGE, 7));
    let output = site.root().join("../curl.out");
    let server = Server::start(&site.root(), extra);
    let baseline = fd_count(server.pid());
    // curl would need 16 s at 4 MiB/s; Python stalls 3 s.
    let curl = curl_download(&server.url("/huge.bin"), &output, "4M");
    let python = python_download(server.address, "/huge.bin", 3.0, HUGE);
    server.wait_for_log_lines(2);
    thread::sleep(Duration::from_millis(300));
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();

    assert_downloads_cut(curl, python, &output, HUGE, extra);
    server.wait_for_stderr("shrank");
    wait_for_fd_count(server.pid(), baseline);
    assert_eq!(server.connect().get("/a.txt", &[]).status, 200);
}

#[test]
fn a_truncated_file_is_reported_as_cut_by_curl_and_python_with_sendfile() {
    a_truncated_file_is_reported_as_cut_by_curl_and_python(&[]);
}

#[test]
fn a_truncated_file_is_reported_as_cut_by_curl_and_python_without_sendfile() {
    a_truncated_file_is_reported_as_cut_by_curl_and_python(&["--no-sendfile"]);
}

fn nothing_follows_a_truncated_body(extra: &[&str]) {
    let site = Site::new();
    let path = site.write("large.bin", &vec![9u8; LENGTH]);
    let server = Server::start(&site.root(), extra);
    let mut client = server.connect();
    let next = request("GET", "/a.txt", &[]);
    let (head_len, first) = start_download(&mut client, "/large.bin", &next);
    let head = String::from_utf8_lossy(&first[..head_len]).into_owned();
    assert!(
        head.contains(&format!("Content-Length: {LENGTH}\r\n")),
        "{head}"
    );
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut received = first[head_len..].to_vec();
    received.extend(client.read_to_close());
    assert!(
        received.len() < LENGTH,
        "{extra:?}: {} bytes",
        received.len()
    );
    // Had the server gone on to the pipelined request, its response would sit inside the body.
    assert!(
        !received.windows(8).any(|window| window == b"HTTP/1.1"),
        "{extra:?}: a response was sent inside the cut body"
    );
    server.wait_for_stderr("shrank");
}

#[test]
fn nothing_follows_a_truncated_body_with_sendfile() {
    nothing_follows_a_truncated_body(&[]);
}

#[test]
fn nothing_follows_a_truncated_body_without_sendfile() {
    nothing_follows_a_truncated_body(&["--no-sendfile"]);
}

/// Downloads `/large.bin` while `change` alters it; checks the response is the file as it was,
/// at its announced length, and that the connection then serves `/large.bin` as it is now.
fn changed_mid_response(extra: &[&str], change: impl FnOnce(&Site), now: &[u8]) {
    let site = Site::new();
    let before = pattern(LENGTH, 3);
    site.write("large.bin", &before);
    let server = Server::start(&site.root(), extra);
    let mut client = server.connect();
    let (head_len, first) = start_download(&mut client, "/large.bin", "");
    let head = String::from_utf8_lossy(&first[..head_len]).into_owned();
    assert!(
        head.contains(&format!("Content-Length: {LENGTH}\r\n")),
        "{head}"
    );
    change(&site);
    let mut body = first[head_len..].to_vec();
    let already = body.len();
    body.resize(LENGTH, 0);
    client.stream.read_exact(&mut body[already..]).unwrap();
    assert!(
        body == before,
        "{extra:?}: the body differs from the file as it was"
    );
    // The response ended exactly where its head said: the next one parses, with the file as it is.
    let next = client.get("/large.bin", &[]);
    assert_eq!(next.status, 200);
    assert!(
        next.body == now,
        "{extra:?}: the next response is not the file as it is now"
    );
    assert_eq!(client.get("/a.txt", &[]).body, b"hello\n");
    assert_eq!(server.stderr(), "");
}

fn a_replaced_file_is_sent_whole_as_it_was(extra: &[&str]) {
    let replacement = pattern(1 << 20, 5);
    let new = replacement.clone();
    changed_mid_response(
        extra,
        move |site| {
            let path = site.write("large.bin.new", &new);
            fs::rename(path, site.root().join("large.bin")).unwrap();
        },
        &replacement,
    );
}

#[test]
fn a_replaced_file_is_sent_whole_as_it_was_with_sendfile() {
    a_replaced_file_is_sent_whole_as_it_was(&[]);
}

#[test]
fn a_replaced_file_is_sent_whole_as_it_was_without_sendfile() {
    a_replaced_file_is_sent_whole_as_it_was(&["--no-sendfile"]);
}

fn a_growing_file_is_sent_at_its_announced_length(extra: &[&str]) {
    let added = vec![b'+'; 4 << 20];
    let mut grown = pattern(LENGTH, 3);
    grown.extend_from_slice(&added);
    changed_mid_response(
        extra,
        move |site| {
            OpenOptions::new()
                .append(true)
                .open(site.root().join("large.bin"))
                .unwrap()
                .write_all(&added)
                .unwrap();
        },
        &grown,
    );
}

#[test]
fn a_growing_file_is_sent_at_its_announced_length_with_sendfile() {
    a_growing_file_is_sent_at_its_announced_length(&[]);
}

#[test]
fn a_growing_file_is_sent_at_its_announced_length_without_sendfile() {
    a_growing_file_is_sent_at_its_announced_length(&["--no-sendfile"]);
}

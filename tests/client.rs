//! End-to-end tests of `iomux client`: the built command against an echo server on loopback, with its
//! input piped — lines, a last line without a newline, every byte value, a large input, replies printed
//! line by line while input is still open, and a refused connection.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::thread;

use support::tools::{
    HANG_GUARD, closing_server, echo_server, refused_address, run_iomux, spawn_iomux, wait_bounded,
};

#[test]
fn piped_lines_come_back() {
    let address = echo_server().to_string();
    let output = run_iomux(&["client", &address], b"a\nb\n");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"a\nb\n");
}

#[test]
fn a_last_line_without_newline_is_printed_after_the_end_of_input() {
    let address = echo_server().to_string();
    let output = run_iomux(&["client", &address], b"first\nno newline");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"first\nno newline");
}

#[test]
fn every_byte_value_passes_unchanged() {
    let address = echo_server().to_string();
    let input: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let output = run_iomux(&["client", &address], &input);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, input);
}

#[test]
fn a_large_input_with_long_lines_comes_back_whole() {
    let address = echo_server().to_string();
    // 4 MiB: more than the socket buffers hold, with lines longer than the client's line limit.
    let input: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| {
            if i % 100_003 == 0 {
                b'\n'
            } else {
                (i % 251) as u8
            }
        })
        .collect();
    let output = run_iomux(&["client", &address], &input);
    assert!(output.status.success(), "{:?}", output.stderr);
    assert_eq!(output.stdout.len(), input.len());
    assert!(output.stdout == input, "the echo differs from the input");
}

#[test]
fn each_reply_line_is_printed_while_input_is_still_open() {
    let address = echo_server().to_string();
    let mut guard = spawn_iomux(&["client", &address]);
    let mut input = guard.0.stdin.take().expect("stdin is piped");
    let output = BufReader::new(guard.0.stdout.take().expect("stdout is piped"));
    let (sender, lines) = mpsc::channel();
    // Ends when the child's stdout closes (at the latest when the guard kills it).
    thread::spawn(move || {
        for line in output.lines() {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    for word in ["hello", "world"] {
        writeln!(input, "{word}").unwrap();
        input.flush().unwrap();
        // A client that waited for the end of input would send nothing back before this gives up.
        let line = lines
            .recv_timeout(HANG_GUARD)
            .expect("the reply line came while input was still open")
            .unwrap();
        assert_eq!(line, word);
    }
    drop(input);
    let status = wait_bounded(&mut guard.0);
    assert!(status.success());
}

#[test]
fn a_server_that_closes_at_once_ends_the_client() {
    let address = closing_server().to_string();
    let output = run_iomux(&["client", &address], b"");
    // Closed before anything was sent: nothing to print, nothing refused.
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_refused_connection_exits_1_with_the_address() {
    let address = refused_address().to_string();
    let output = run_iomux(&["client", &address], b"a\n");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        output
            .stderr
            .starts_with(&format!("iomux: connecting to {address}: ")),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.to_lowercase().contains("refused"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_address_is_a_usage_error() {
    let output = run_iomux(&["client"], b"");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

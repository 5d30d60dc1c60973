//! Regressions found by the fuzz targets (`fuzz/`) and the model-based selector tests (`model.rs`),
//! each named after what broke, with the input that found it cut down to its essence.

use iomux::http::{Error, MAX_HEAD, MAX_REQUEST_LINE, Parse, parse};

/// What `parse` answers for `bytes`: `None` for "read more", else the status of the answer.
fn answer(bytes: &[u8]) -> Option<u16> {
    match parse(bytes) {
        Ok(Parse::Partial) => None,
        Ok(Parse::Complete(_)) => Some(200),
        Err(error) => Some(error.status().code()),
    }
}

/// Asserts that every prefix of `bytes` from `from` on either asks for more or gives `expected`, as
/// the whole does: the answer must not depend on how the bytes were split across reads.
#[track_caller]
fn same_answer_however_split(bytes: &[u8], from: usize, expected: u16) {
    assert_eq!(answer(bytes), Some(expected), "the whole input");
    for cut in from..bytes.len() {
        if let Some(early) = answer(&bytes[..cut]) {
            assert_eq!(early, expected, "the first {cut} of {} bytes", bytes.len());
        }
    }
}

/// Found by the `http_head` fuzz target: a request line broken within its first 4 KiB (a space too
/// many makes the version invalid) that goes on past the limit was 400 while less than 4 KiB had
/// arrived and 414 once the whole had.
#[test]
fn http_request_line_broken_early_and_overlong_is_400_however_split() {
    let mut line = b"GET /".to_vec();
    line.resize(1600, b'a');
    line.extend_from_slice(b" Cad ");
    line.resize(MAX_REQUEST_LINE + 8, b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    same_answer_however_split(&line, 1, 400);
}

/// The same rule for the head limit: a head broken past 8 KiB (a header name with a space) was 431
/// while it was still arriving and 400 once the break had arrived.
#[test]
fn http_head_broken_past_the_limit_is_431_however_split() {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    let mut pad = b"X-Pad: ".to_vec();
    pad.resize(200, b'a');
    pad.extend_from_slice(b"\r\n");
    while head.len() < MAX_HEAD + 100 {
        head.extend_from_slice(&pad);
    }
    head.extend_from_slice(b"Bad Name: x\r\n\r\n");
    same_answer_however_split(&head, MAX_HEAD - 10, 431);
}

/// A request line under the limit that is broken stays 400, and a long but valid one stays 414.
#[test]
fn http_request_line_limit_still_applies() {
    let mut valid = b"GET /".to_vec();
    valid.resize(MAX_REQUEST_LINE + 10, b'a');
    valid.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    same_answer_however_split(&valid, 1, 414);
    assert!(matches!(parse(&valid), Err(Error::UriTooLong { .. })));
}

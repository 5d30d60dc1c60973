//! The access log of `iomux http`: one line per response in the common log format, collected in a
//! per-thread buffer and written to stdout once per event-loop round. Layer 4, the HTTP server.
//!
//! A line is `HOST - - [DAY/MON/YEAR:HH:MM:SS +0000] "REQUEST LINE" STATUS BYTES`, with the time in
//! UTC and `-` for a response without a body. The request line is the one parsed, or for a request
//! that could not be parsed the first line of what arrived (at most [`MAX_RAW_LINE`] bytes); every
//! byte outside printable ASCII, and `"` and `\`, is written as `\xHH`, so a client cannot forge
//! lines or break the format.
//!
//! The buffer is per thread (each worker is one thread with one loop) so that the flush can be queued
//! with [`EventLoop::call_soon`] as a callback that captures nothing: no allocation per round. The
//! first line of a round queues the flush; the flush is one `write(2)` to stdout for the whole round.
//! If stdout fails (its reader went away), the error is reported once on stderr and the log is off
//! for the rest of the thread's life; serving goes on.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::Request;
use super::response::{push_decimal, push_http_date};
use crate::event_loop::{EventLoop, Handler};

/// The most bytes of an unparsed request's first line that are logged.
pub(crate) const MAX_RAW_LINE: usize = 256;

/// A log flushed when it grows past this many bytes, even within a round.
const FLUSH_AT: usize = 64 * 1024;

/// The request as the log shows it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Line<'a> {
    /// A parsed request: method, target and version.
    Parsed(&'a Request<'a>),
    /// What arrived of a request that could not be parsed (its first line is logged).
    Raw(&'a [u8]),
}

/// One thread's access log.
struct AccessLog {
    /// Lines not yet written.
    buffer: Vec<u8>,
    /// A flush is queued on the loop for this round.
    scheduled: bool,
    /// Writing to stdout failed; nothing more is logged.
    failed: bool,
    /// The second the cached date is for, and its text (`10/Oct/2000:13:55:36 +0000`).
    date: (u64, [u8; 26]),
}

thread_local! {
    static LOG: RefCell<AccessLog> = const {
        RefCell::new(AccessLog {
            buffer: Vec::new(),
            scheduled: false,
            failed: false,
            date: (u64::MAX, [0; 26]),
        })
    };
}

/// Appends a line for a response to this thread's log and makes sure `event_loop` writes it out at
/// the end of the round.
pub(crate) fn record<H: Handler>(
    event_loop: &mut EventLoop<H>,
    peer: IpAddr,
    line: Line<'_>,
    status: u16,
    body_len: u64,
) {
    let schedule = LOG.with_borrow_mut(|log| {
        if log.failed {
            return false;
        }
        log.push(peer, line, status, body_len);
        if log.buffer.len() >= FLUSH_AT {
            log.flush();
        }
        !std::mem::replace(&mut log.scheduled, true)
    });
    if schedule {
        event_loop.call_soon(|_| flush());
    }
}

/// Writes out what this thread has logged (at the end of a round, and when a worker ends).
pub(crate) fn flush() {
    LOG.with_borrow_mut(AccessLog::flush);
}

impl AccessLog {
    fn push(&mut self, peer: IpAddr, line: Line<'_>, status: u16, body_len: u64) {
        let out = &mut self.buffer;
        write!(out, "{peer}").expect("writing to a Vec cannot fail");
        out.extend_from_slice(b" - - [");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.date.0 != now {
            self.date = (now, format_date(now));
        }
        out.extend_from_slice(&self.date.1);
        out.extend_from_slice(b"] \"");
        match line {
            Line::Parsed(request) => {
                out.extend_from_slice(request.method().as_str().as_bytes());
                out.push(b' ');
                push_escaped(out, request.target().as_bytes());
                out.push(b' ');
                out.extend_from_slice(request.version().as_str().as_bytes());
            }
            Line::Raw(bytes) => {
                let start = bytes
                    .iter()
                    .position(|&byte| byte != b'\r' && byte != b'\n')
                    .unwrap_or(bytes.len());
                let first = &bytes[start..];
                let end = first
                    .iter()
                    .position(|&byte| byte == b'\r' || byte == b'\n')
                    .unwrap_or(first.len());
                let first = &first[..end];
                push_escaped(out, &first[..first.len().min(MAX_RAW_LINE)]);
                if first.len() > MAX_RAW_LINE {
                    out.extend_from_slice(b"...");
                }
            }
        }
        out.extend_from_slice(b"\" ");
        push_decimal(out, u64::from(status));
        out.push(b' ');
        if body_len == 0 {
            out.push(b'-');
        } else {
            push_decimal(out, body_len);
        }
        out.push(b'\n');
    }

    fn flush(&mut self) {
        self.scheduled = false;
        if self.buffer.is_empty() || self.failed {
            self.buffer.clear();
            return;
        }
        let result = io::stdout().lock().write_all(&self.buffer);
        self.buffer.clear();
        if let Err(error) = result {
            self.failed = true;
            eprintln!(
                "iomux http: the access log is off from now on: writing to stdout failed: {error}"
            );
        }
    }
}

/// `seconds` since the epoch as the log's date, `06/Nov/1994:08:49:37 +0000`, rearranged from the
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`.
fn format_date(seconds: u64) -> [u8; 26] {
    let mut http = Vec::with_capacity(29);
    push_http_date(&mut http, seconds);
    let mut text = [b' '; 26];
    text[0..2].copy_from_slice(&http[5..7]);
    text[2] = b'/';
    text[3..6].copy_from_slice(&http[8..11]);
    text[6] = b'/';
    text[7..11].copy_from_slice(&http[12..16]);
    text[11] = b':';
    text[12..20].copy_from_slice(&http[17..25]);
    text[20..26].copy_from_slice(b" +0000");
    text
}

/// Appends `bytes`, with everything but printable ASCII, `"` and `\` as `\xHH`.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\' {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Parse, parse};

    fn line_for(line: Line<'_>, status: u16, body_len: u64) -> String {
        let mut log = AccessLog {
            buffer: Vec::new(),
            scheduled: false,
            failed: false,
            date: (u64::MAX, [0; 26]),
        };
        log.push(IpAddr::from([127, 0, 0, 1]), line, status, body_len);
        String::from_utf8(log.buffer).unwrap()
    }

    #[test]
    fn dates_are_in_the_common_log_format() {
        assert_eq!(&format_date(784_111_777), b"06/Nov/1994:08:49:37 +0000");
    }

    #[test]
    fn a_parsed_request_is_logged_with_its_line_status_and_size() {
        let Ok(Parse::Complete(request)) = parse(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        else {
            panic!("a complete request");
        };
        let text = line_for(Line::Parsed(&request), 200, 1234);
        let (start, rest) = text.split_once(" [").unwrap();
        assert_eq!(start, "127.0.0.1 - -");
        let (_date, rest) = rest.split_once("] ").unwrap();
        assert_eq!(rest, "\"GET /a%20b?x=1 HTTP/1.1\" 200 1234\n");
    }

    #[test]
    fn raw_lines_are_escaped_cut_and_empty_bodies_are_a_dash() {
        let text = line_for(
            Line::Raw(b"\r\nBREW /\"x\\\x01\xff HTTP/1.1\r\nHost: h\r\n"),
            501,
            0,
        );
        assert!(
            text.ends_with("\"BREW /\\x22x\\x5C\\x01\\xFF HTTP/1.1\" 501 -\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
        let long = vec![b'a'; 1000];
        let text = line_for(Line::Raw(&long), 414, 10);
        assert!(text.contains(&format!("\"{}...\" 414 10", "a".repeat(MAX_RAW_LINE))));
    }
}

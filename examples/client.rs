//! Seeds 002 and 004's interactive client, on iomux's selector (layer 1) with the select backend: it
//! watches standard input and the connection at once, sends what is typed (each line with its newline)
//! and prints what comes back as it arrives.
//!
//! The seeds send a line, then take one `recv` as the whole reply: a reply split over two segments is
//! printed half now and half after the next line, and a server that answers nothing hangs the client.
//! Here nothing is assumed about replies: every byte is printed as it arrives, raw (binary-safe, never
//! decoded). A line the kernel takes only in part is kept and sent when the socket is writable, and
//! input is not read meanwhile. At the end of input the client shuts its write side (a half-close: the
//! server sees end of stream) and prints the rest until the server closes. Empty lines are sent too,
//! where the seeds skip them.
//!
//! `cargo run --example client [HOST:PORT]` (default 127.0.0.1:8888), e.g. against
//! `cargo run --example selectors_upper_server`. `iomux client HOST:PORT` is the same client framed by
//! lines.
#![forbid(unsafe_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use iomux::selector::{BackendKind, Events, Interest, Selector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8888".to_owned());
    let stream = TcpStream::connect(&address)
        .map_err(|error| format!("connecting to {address}: {error}"))?;
    // A duplicate of fd 0, so reads go straight to read(2) without std's buffer in between.
    let stdin = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?);
    run(stream, stdin, io::stdout().lock())?;
    Ok(())
}

/// Which fd an event is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Input,
    Connection,
}

/// Sends `input` to `stream` and copies what comes back to `output`, until the server closes.
///
/// `input` is read only when the selector says it is readable, so it may be a blocking pipe, terminal
/// or file.
///
/// # Errors
/// What the selector, reading `input`, the connection or writing `output` return.
pub fn run(
    stream: TcpStream,
    mut input: impl Read + AsFd,
    mut output: impl Write,
) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let input_fd = input.as_fd().as_raw_fd();
    let mut selector = Selector::with_backend(BackendKind::Select)?;
    selector.register(&stream, Interest::READ, Source::Connection)?;
    let mut watching_input = false;
    let mut input_ended = false;
    let mut write_shut = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = vec![0; 16 * 1024];
    let mut events = Events::with_capacity(2);
    loop {
        // Send what is pending; while some is left, watch for writability and not for input.
        while !pending.is_empty() {
            match (&stream).write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let interest = if pending.is_empty() {
            Interest::READ
        } else {
            Interest::READ | Interest::WRITE
        };
        if selector.get(stream.as_raw_fd()).map(|key| key.interest()) != Some(interest) {
            selector.modify_interest(stream.as_raw_fd(), interest)?;
        }
        if pending.is_empty() && !input_ended && !watching_input {
            selector.register(&input, Interest::READ, Source::Input)?;
            watching_input = true;
        }
        if pending.is_empty() && input_ended && !write_shut {
            stream.shutdown(Shutdown::Write)?;
            write_shut = true;
        }

        selector.select(&mut events, None)?;
        for event in &events {
            match selector.get(event.fd()).map(|key| *key.data()) {
                Some(Source::Input) => {
                    let n = input.read(&mut buffer)?;
                    pending.extend_from_slice(&buffer[..n]);
                    input_ended = n == 0;
                    selector.unregister(input_fd)?;
                    watching_input = false;
                }
                Some(Source::Connection) if event.ready().is_readable() => {
                    match (&stream).read(&mut buffer) {
                        Ok(0) => return output.flush(),
                        Ok(n) => {
                            output.write_all(&buffer[..n])?;
                            output.flush()?;
                        }
                        Err(error)
                            if matches!(
                                error.kind(),
                                ErrorKind::WouldBlock | ErrorKind::Interrupted
                            ) => {}
                        Err(error) => return Err(error),
                    }
                }
                Some(Source::Connection) | None => {}
            }
        }
    }
}

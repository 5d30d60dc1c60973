//! `iomux client HOST:PORT`: the seeds' interactive line client, on iomux's selector (layer 1) watching
//! standard input and the connection at once, so neither waits on the other.
//!
//! Input is sent as it comes (a terminal hands over one line, newline included, at a time); while part
//! of it waits for room in the socket, no more is read. What comes back is printed up to its last
//! newline as it arrives, never on the seeds' assumption that one `recv` is one reply; a line longer
//! than 64 KiB is printed in pieces so memory stays bounded, and a last line without a newline is
//! printed when the server closes. At the end of input the client shuts its write side (a half-close)
//! and prints the rest until the server closes.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use anyhow::{Context, bail};
use iomux::selector::{BackendKind, Events, Interest, Selector};

use crate::args::ClientArgs;

/// The most bytes of an unfinished line held back before they are printed anyway.
const LINE_LIMIT: usize = 64 * 1024;
/// How long a connection attempt may take before the next address is tried (or the client gives up).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much one read takes from standard input or the connection.
const CHUNK: usize = 16 * 1024;

/// Which fd an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Input,
    Connection,
}

/// Runs `iomux client`.
pub fn run(args: ClientArgs) -> anyhow::Result<()> {
    let address = args.address;
    let stream = connect(&address).with_context(|| format!("connecting to {address}"))?;
    // A duplicate of fd 0, read with plain read(2): std's stdin buffer would hide data from the selector.
    let input = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .context("opening standard input")?;
    relay(stream, input, io::stdout().lock(), &address)
}

/// Connects to the first address `address` resolves to that answers within [`CONNECT_TIMEOUT`].
fn connect(address: &str) -> io::Result<TcpStream> {
    let mut last = None;
    for resolved in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&resolved, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(ErrorKind::NotFound, "the address resolved to nothing")))
}

/// Sends `input` to `stream` and prints what comes back to `output`, framed by newlines, until the
/// server closes. `input` is read only when the selector says it is readable, so it may be a blocking
/// terminal, pipe or file.
fn relay(
    stream: TcpStream,
    mut input: File,
    mut output: impl Write,
    address: &str,
) -> anyhow::Result<()> {
    stream
        .set_nonblocking(true)
        .with_context(|| format!("setting up the connection to {address}"))?;
    // poll, not epoll: epoll refuses regular files (EPERM), and standard input may be one (`< file`).
    let mut selector = Selector::with_backend(BackendKind::Poll).context("creating a selector")?;
    selector
        .register(&stream, Interest::READ, Source::Connection)
        .context("watching the connection")?;
    let mut watching_input = false;
    let mut input_ended = false;
    let mut write_shut = false;
    // Set when the server stopped taking input: the rest of it is dropped, what it sent is printed.
    let mut refused: Option<io::Error> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut buffer = vec![0; CHUNK];
    let mut events = Events::with_capacity(2);
    loop {
        if refused.is_none() {
            send(&stream, &mut pending).unwrap_or_else(|error| refused = Some(error));
        }
        let sending = refused.is_none() && !pending.is_empty();
        let interest = if sending {
            Interest::READ | Interest::WRITE
        } else {
            Interest::READ
        };
        if selector.get(stream.as_raw_fd()).map(|key| key.interest()) != Some(interest) {
            selector
                .modify_interest(stream.as_raw_fd(), interest)
                .context("watching the connection")?;
        }
        let idle = refused.is_none() && pending.is_empty();
        if idle && !input_ended && !watching_input {
            selector
                .register(&input, Interest::READ, Source::Input)
                .context("watching standard input")?;
            watching_input = true;
        }
        if idle && input_ended && !write_shut {
            stream
                .shutdown(Shutdown::Write)
                .with_context(|| format!("shutting down the write side to {address}"))?;
            write_shut = true;
        }

        selector
            .select(&mut events, None)
            .context("waiting for input or the connection")?;
        for event in &events {
            match selector.get(event.fd()).map(|key| *key.data()) {
                Some(Source::Input) => match input.read(&mut buffer) {
                    Ok(n) => {
                        pending.extend_from_slice(&buffer[..n]);
                        input_ended = n == 0;
                        // Watched again once this is sent.
                        selector
                            .unregister(input.as_raw_fd())
                            .context("watching standard input")?;
                        watching_input = false;
                    }
                    // A non-blocking standard input (inherited) with nothing after all.
                    Err(error) if is_transient(&error) => {}
                    Err(error) => return Err(error).context("reading standard input"),
                },
                Some(Source::Connection) => match (&stream).read(&mut buffer) {
                    Ok(0) => {
                        output
                            .write_all(&line)
                            .and_then(|()| output.flush())
                            .context("writing to standard output")?;
                        if let Some(error) = refused {
                            bail!(
                                "{address} closed the connection before taking all input ({error})"
                            );
                        }
                        return Ok(());
                    }
                    Ok(n) => print_lines(&mut output, &mut line, &buffer[..n])
                        .context("writing to standard output")?,
                    Err(error) if is_transient(&error) => {}
                    Err(error) => {
                        return Err(error).with_context(|| format!("reading from {address}"));
                    }
                },
                None => {}
            }
        }
    }
}

/// Writes as much of `pending` as the socket takes now.
fn send(mut stream: &TcpStream, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Prints `line` (the unfinished line so far) and `data` up to the last newline in `data`, and keeps
/// the rest as the unfinished line; prints it anyway once it reaches [`LINE_LIMIT`].
fn print_lines(output: &mut impl Write, line: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
    match data.iter().rposition(|&byte| byte == b'\n') {
        Some(end) => {
            output.write_all(line)?;
            output.write_all(&data[..=end])?;
            line.clear();
            line.extend_from_slice(&data[end + 1..]);
        }
        None => line.extend_from_slice(data),
    }
    if line.len() >= LINE_LIMIT {
        output.write_all(line)?;
        line.clear();
    }
    output.flush()
}

/// An error after which the same call may simply be tried again later.
fn is_transient(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_up_to_the_last_newline_and_keeps_the_rest() {
        let (mut output, mut line) = (Vec::new(), Vec::new());
        print_lines(&mut output, &mut line, b"par").unwrap();
        assert_eq!(output, b"");
        print_lines(&mut output, &mut line, b"tial\nnext\nhalf").unwrap();
        assert_eq!(output, b"partial\nnext\n");
        assert_eq!(line, b"half");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_printed_in_pieces() {
        let (mut output, mut line) = (Vec::new(), Vec::new());
        let long = vec![b'x'; LINE_LIMIT + 10];
        print_lines(&mut output, &mut line, &long).unwrap();
        assert_eq!(output.len(), LINE_LIMIT + 10);
        assert!(line.is_empty());
    }
}

//! Seed 000's poll server on iomux's selector (layer 1) with the poll backend: events come back as fd
//! numbers, and a map from fd to socket (the seed's `fdmap`) finds the object behind each. A client is
//! watched for reading; after each chunk it sends, it is watched for writing only until its `OK` is out,
//! then for reading again.
//!
//! Corrected: bytes are printed escaped, never decoded (binary input cannot crash it); an `OK` the kernel
//! takes only in part keeps the client in write mode until the rest is out; errors and hang-ups
//! (`POLLERR`, `POLLHUP`) close the client instead of being ignored; the backlog is `SOMAXCONN`, not 3;
//! running out of fds pauses accepting instead of spinning.
//!
//! `cargo run --example poll_server [PORT]` (default 8888, 0 lets the kernel choose); the first line says
//! where it listens.
#![forbid(unsafe_code)]

mod common;

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use iomux::selector::{BackendKind, Events, Interest, Ready, Selector};

/// What the server answers to every chunk it receives.
const REPLY: &[u8] = b"OK";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("poll_server")?)?;
    println!("poll_server: listening on tcp://{}", listener.local_addr()?);
    serve(listener)?;
    Ok(())
}

/// What an fd in the map is.
enum Entry {
    /// The listening socket.
    Listener(TcpListener),
    /// A client, and the part of its reply not yet sent (empty while it is watched for reading).
    Client {
        stream: TcpStream,
        address: SocketAddr,
        output: Vec<u8>,
    },
}

/// What to do with an fd after handling its event.
enum Next {
    Keep,
    Watch(Interest),
    Close(Option<io::Error>),
}

/// Serves clients on `listener` until the selector fails.
///
/// # Errors
/// What creating the selector, registering the listener or waiting returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut poll: Selector<()> = Selector::with_backend(BackendKind::Poll)?;
    // p.register(s, POLLIN | POLLERR): errors are reported whether or not they are asked for.
    poll.register(&listener, Interest::READ, ())?;
    let mut fdmap: HashMap<RawFd, Entry> = HashMap::new();
    fdmap.insert(listener.as_raw_fd(), Entry::Listener(listener));
    let mut events = Events::default();
    let mut accepted = Vec::new();
    loop {
        poll.select(&mut events, None)?;
        for event in &events {
            let fd = event.fd();
            let next = match fdmap.get_mut(&fd) {
                None => continue,
                Some(Entry::Listener(listener)) => {
                    accept(listener, &mut accepted);
                    Next::Keep
                }
                Some(Entry::Client {
                    stream,
                    address,
                    output,
                }) => handle(stream, *address, output, event.ready()),
            };
            match next {
                Next::Keep => {}
                Next::Watch(interest) => {
                    if let Err(error) = poll.modify_interest(fd, interest) {
                        close(&mut poll, &mut fdmap, fd, Some(error.into()));
                    }
                }
                Next::Close(error) => close(&mut poll, &mut fdmap, fd, error),
            }
        }
        // Add the new clients to the poll set and, as the seed does, to the map.
        for (stream, address) in accepted.drain(..) {
            if let Err(error) = poll.register(&stream, Interest::READ, ()) {
                println!("refusing {address}: {error}");
                continue;
            }
            println!("Connect from {address}");
            fdmap.insert(
                stream.as_raw_fd(),
                Entry::Client {
                    stream,
                    address,
                    output: Vec::new(),
                },
            );
        }
    }
}

/// Accepts every pending connection into `accepted`.
fn accept(listener: &TcpListener, accepted: &mut Vec<(TcpStream, SocketAddr)>) {
    loop {
        match listener.accept() {
            Ok((stream, address)) => match stream.set_nonblocking(true) {
                Ok(()) => accepted.push((stream, address)),
                Err(error) => println!("{address}: {error}"),
            },
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            Err(error) => {
                if common::accept_failed(&error) {
                    std::thread::sleep(common::FD_PAUSE);
                }
                return;
            }
        }
    }
}

/// Handles one event of a client: in read mode, read a chunk and switch to write mode; in write mode,
/// send what is left of the reply and switch back once it is all out.
fn handle(stream: &mut TcpStream, address: SocketAddr, output: &mut Vec<u8>, ready: Ready) -> Next {
    if output.is_empty() {
        // POLLIN, or POLLERR / POLLHUP, which the read then reports as an error or end of stream.
        if !(ready.is_readable() || ready.is_error() || ready.is_hup()) {
            return Next::Keep;
        }
        let mut buffer = [0; 1024];
        return match stream.read(&mut buffer) {
            Ok(0) => Next::Close(None),
            Ok(n) => {
                println!("{address}: {}", buffer[..n].escape_ascii());
                output.extend_from_slice(REPLY);
                Next::Watch(Interest::WRITE) // p.register(fd, POLLOUT)
            }
            Err(error)
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
            {
                Next::Keep
            }
            Err(error) => Next::Close(Some(error)),
        };
    }
    while !output.is_empty() {
        match stream.write(output) {
            Ok(n) => {
                output.drain(..n);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Next::Keep,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Next::Close(Some(error)),
        }
    }
    Next::Watch(Interest::READ) // p.register(fd, POLLIN)
}

/// Stops watching a client and closes it.
fn close(
    poll: &mut Selector<()>,
    fdmap: &mut HashMap<RawFd, Entry>,
    fd: RawFd,
    error: Option<io::Error>,
) {
    // p.unregister(fd) before the socket is closed (dropped), as the selector's contract asks.
    let _ = poll.unregister(fd);
    if let Some(Entry::Client { address, .. }) = fdmap.remove(&fd) {
        match error {
            Some(error) => println!("{address}: {error}; closing"),
            None => println!("{address} closed"),
        }
    }
}

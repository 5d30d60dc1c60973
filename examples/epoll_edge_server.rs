//! Seed 000's epoll server on iomux's selector (layer 1) with the epoll backend and edge triggering
//! (`EPOLLET`): each client is registered once for reading and writing, edge-triggered, and answers each
//! chunk it reads with `OK`. The listener stays level-triggered, as in the seed.
//!
//! Edge triggering reports readiness only when it changes, so data already there is never reported
//! again: on every event the server reads until `WouldBlock` and writes until `WouldBlock` or nothing is
//! left. The seed reads once per event (a burst larger than one `recv` would then sit unread until the
//! client sends again) and re-registers the client level-triggered after its first reply.
//!
//! Also corrected: bytes are printed escaped, never decoded; a reply the kernel takes only in part waits
//! for the next writable edge; a client that sends but does not read is no longer read once 64 KiB of
//! replies wait for it (reading resumes after they drain — the server reads on, since no new edge will
//! come for data already there); a client that shuts its write side still gets its replies; the backlog
//! is `SOMAXCONN`, not 3; running out of fds pauses accepting instead of spinning.
//!
//! `cargo run --example epoll_edge_server [PORT]` (default 8888, 0 lets the kernel choose); the first line
//! says where it listens.
#![forbid(unsafe_code)]

mod common;

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use iomux::selector::{BackendKind, Events, Interest, Selector, Trigger};

/// What the server answers to every chunk it receives.
const REPLY: &[u8] = b"OK";
/// A client whose unsent replies reach this many bytes is not read until they drain.
const OUTPUT_LIMIT: usize = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("epoll_edge_server")?)?;
    println!(
        "epoll_edge_server: listening on tcp://{}",
        listener.local_addr()?
    );
    serve(listener)?;
    Ok(())
}

/// One connected client.
struct Client {
    stream: TcpStream,
    address: SocketAddr,
    /// Replies not yet taken by the kernel.
    output: Vec<u8>,
    /// The client shut its write side: nothing more to read.
    read_closed: bool,
}

/// Serves clients on `listener` until the selector fails.
///
/// # Errors
/// What creating the selector (epoll only: Linux), registering the listener or waiting returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut epoll: Selector<()> = Selector::with_backend(BackendKind::Epoll)?;
    // ep.register(s, EPOLLIN | EPOLLERR): level-triggered; errors are reported without being asked for.
    epoll.register(&listener, Interest::READ, ())?;
    let mut fdmap: HashMap<RawFd, Client> = HashMap::new();
    let mut events = Events::default();
    loop {
        epoll.select(&mut events, None)?;
        println!("ready: {:?}", events.iter().collect::<Vec<_>>());
        for event in &events {
            if event.fd() == listener.as_raw_fd() {
                accept(&listener, &mut epoll, &mut fdmap);
                continue;
            }
            let Some(client) = fdmap.get_mut(&event.fd()) else {
                continue;
            };
            // Whatever the edge was (readable, writable, error, hang-up), do all the IO there is to do.
            match drive(client) {
                Ok(true) => {}
                Ok(false) => close(&mut epoll, &mut fdmap, event.fd(), None),
                Err(error) => close(&mut epoll, &mut fdmap, event.fd(), Some(error)),
            }
        }
    }
}

/// Accepts every pending connection and registers it, edge-triggered, for reading and writing.
fn accept(listener: &TcpListener, epoll: &mut Selector<()>, fdmap: &mut HashMap<RawFd, Client>) {
    loop {
        let (stream, address) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            Err(error) => {
                if common::accept_failed(&error) {
                    std::thread::sleep(common::FD_PAUSE);
                }
                return;
            }
        };
        if let Err(error) = stream.set_nonblocking(true) {
            println!("{address}: {error}");
            continue;
        }
        // ep.register(c, EPOLLIN | EPOLLET), and writing too, so a partial reply needs no re-registration.
        let interest = Interest::READ | Interest::WRITE;
        if let Err(error) = epoll.register_with(&stream, interest, Trigger::Edge, ()) {
            println!("refusing {address}: {error}");
            continue;
        }
        println!("Connect from {address}");
        // Data that arrived before the registration is reported too: epoll checks at EPOLL_CTL_ADD.
        fdmap.insert(
            stream.as_raw_fd(),
            Client {
                stream,
                address,
                output: Vec::new(),
                read_closed: false,
            },
        );
    }
}

/// Reads until `WouldBlock` and writes until `WouldBlock` (or nothing is left), as edge triggering asks.
/// Returns whether the client stays open.
fn drive(client: &mut Client) -> io::Result<bool> {
    let mut buffer = [0; 1024];
    loop {
        while !client.output.is_empty() {
            match client.stream.write(&client.output) {
                Ok(n) => {
                    client.output.drain(..n);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if client.read_closed {
            return Ok(!client.output.is_empty());
        }
        if client.output.len() >= OUTPUT_LIMIT {
            // The last write hit WouldBlock: the next writable edge brings us back here.
            return Ok(true);
        }
        match client.stream.read(&mut buffer) {
            Ok(0) => client.read_closed = true,
            Ok(n) => {
                println!("{}: {}", client.address, buffer[..n].escape_ascii());
                client.output.extend_from_slice(REPLY);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                // Read to the end of what is there; the next readable edge brings us back.
                return Ok(true);
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Stops watching a client and closes it.
fn close(
    epoll: &mut Selector<()>,
    fdmap: &mut HashMap<RawFd, Client>,
    fd: RawFd,
    error: Option<io::Error>,
) {
    // ep.unregister(fd) before the socket is closed (dropped), as the selector's contract asks.
    let _ = epoll.unregister(fd);
    if let Some(client) = fdmap.remove(&fd) {
        match error {
            Some(error) => println!("{}: {error}; closing", client.address),
            None => println!("{} closed", client.address),
        }
    }
}

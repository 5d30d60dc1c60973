//! Seed 000's select server on iomux's selector (layer 1) with the select backend: it watches the
//! listener and every client for reading (the seed's `rlist`), the clients that owe a reply for writing
//! (`wlist`), and answers each chunk a client sends with `OK`.
//!
//! Corrected: bytes are printed escaped, never decoded (binary input cannot crash it); a reply the kernel
//! takes only in part stays queued until the socket is writable again; a client that sends but does not
//! read is no longer read once 64 KiB of replies wait for it; a client that shuts its write side still
//! gets its replies before the server closes; the backlog is `SOMAXCONN`, not 3; an fd select cannot
//! watch (≥ 1024) is refused with the selector's typed error, and running out of fds pauses accepting
//! instead of spinning.
//!
//! `cargo run --example select_ok_server [PORT]` (default 8888, 0 lets the kernel choose); the first
//! line says where it listens. Try it with `iomux client 127.0.0.1:8888`.
#![forbid(unsafe_code)]

mod common;

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use iomux::selector::{BackendKind, Events, Interest, Ready, Selector};

/// What the server answers to every chunk it receives.
const REPLY: &[u8] = b"OK";
/// A client whose unsent replies reach this many bytes is not read until they drain.
const OUTPUT_LIMIT: usize = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("select_ok_server")?)?;
    println!(
        "select_ok_server: listening on tcp://{}",
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
    /// The client shut its write side (or its connection ended): nothing more to read.
    read_closed: bool,
}

/// Serves clients on `listener` until the selector fails.
///
/// # Errors
/// What creating the selector, registering the listener or waiting returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut selector: Selector<()> = Selector::with_backend(BackendKind::Select)?;
    selector.register(&listener, Interest::READ, ())?; // rlist = [s]
    let mut clients: HashMap<RawFd, Client> = HashMap::new();
    let mut events = Events::default();
    loop {
        selector.select(&mut events, None)?;
        for event in &events {
            if event.fd() == listener.as_raw_fd() {
                accept(&listener, &mut selector, &mut clients);
                continue;
            }
            let Some(client) = clients.get_mut(&event.fd()) else {
                continue;
            };
            let result = serve_client(client, event.ready()).and_then(|next| match next {
                Some(interest)
                    if selector.get(event.fd()).map(|key| key.interest()) != Some(interest) =>
                {
                    selector.modify_interest(event.fd(), interest)?;
                    Ok(true)
                }
                Some(_) => Ok(true),
                None => Ok(false),
            });
            match result {
                Ok(true) => {}
                Ok(false) => close(&mut selector, &mut clients, event.fd(), None),
                Err(error) => close(&mut selector, &mut clients, event.fd(), Some(error)),
            }
        }
    }
}

/// Accepts every pending connection and starts watching it for reading.
fn accept(
    listener: &TcpListener,
    selector: &mut Selector<()>,
    clients: &mut HashMap<RawFd, Client>,
) {
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
        // rlist.append(c); select cannot watch fds ≥ 1024, and says so with a typed error.
        if let Err(error) = selector.register(&stream, Interest::READ, ()) {
            println!("refusing {address}: {error}");
            continue;
        }
        println!("Connect from {address}");
        clients.insert(
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

/// Reads what arrived and sends what is owed. Returns what to watch the client for next, or `None` once
/// it is done (it closed its side and has every reply).
fn serve_client(client: &mut Client, ready: Ready) -> io::Result<Option<Interest>> {
    if (ready.is_readable() || ready.is_error()) && !client.read_closed {
        let mut buffer = [0; 1024];
        match client.stream.read(&mut buffer) {
            Ok(0) => client.read_closed = true,
            Ok(n) => {
                println!("{}: {}", client.address, buffer[..n].escape_ascii());
                // wlist.append(c): the reply goes out when the socket is writable.
                client.output.extend_from_slice(REPLY);
            }
            Err(error) if is_transient(&error) => {}
            Err(error) => return Err(error),
        }
    }
    if ready.is_writable() {
        flush(&mut client.stream, &mut client.output)?;
    }
    let reading = !client.read_closed && client.output.len() < OUTPUT_LIMIT;
    let interest = match (reading, client.output.is_empty()) {
        (true, true) => Interest::READ,
        (true, false) => Interest::READ | Interest::WRITE,
        (false, false) => Interest::WRITE,
        (false, true) => return Ok(None),
    };
    Ok(Some(interest))
}

/// Writes as much of `output` as the kernel takes now; keeps the rest.
fn flush(stream: &mut TcpStream, output: &mut Vec<u8>) -> io::Result<()> {
    while !output.is_empty() {
        match stream.write(output) {
            Ok(n) => {
                output.drain(..n);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// An error after which the same call may simply be tried again later.
fn is_transient(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// Stops watching a client and closes it.
fn close(
    selector: &mut Selector<()>,
    clients: &mut HashMap<RawFd, Client>,
    fd: RawFd,
    error: Option<io::Error>,
) {
    // Unregister before the socket is closed (dropped), as the selector's contract asks.
    let _ = selector.unregister(fd);
    if let Some(client) = clients.remove(&fd) {
        match error {
            Some(error) => println!("{}: {error}; closing", client.address),
            None => println!("{} closed", client.address),
        }
    }
}

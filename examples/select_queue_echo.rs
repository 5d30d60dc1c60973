//! Seed 001's select echo server with read/write separation, on iomux's selector (layer 1) with the
//! select backend: what a client sends goes into its own queue (the seed's `queue.Queue` per
//! connection) and is written back when the socket is writable (`outputs`, select's `wlist`); the clients
//! are also in the exceptional list (`xlist`), watched here as [`Interest::PRIORITY`].
//!
//! The exceptional condition select reports for a TCP socket is urgent (out-of-band) data, not a broken
//! connection, as the seed takes it: a broken connection shows up as a failing `recv` or `send`, and is
//! closed there. Each client is put in `SO_OOBINLINE` mode (RFC 6093 asks for it), so an urgent byte is
//! read in line and echoed like any other; `PRIORITY` just says one has arrived.
//!
//! Also corrected: the seed's `sendall` blocks the whole server on one slow client and its `get_nowait`
//! sends one queued chunk per round; here each writable event sends as much of the queue as the kernel
//! takes and keeps the rest, a client whose queue reaches 256 KiB is not read until it drains (memory
//! stays bounded), a client that shuts its write side gets its whole echo before the server closes, the
//! backlog is `SOMAXCONN` and an fd select cannot watch (≥ 1024) is refused with the typed error.
//!
//! `cargo run --example select_queue_echo [PORT]` (default 8888, 0 lets the kernel choose); the first
//! line says where it listens.
#![forbid(unsafe_code)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use iomux::selector::{BackendKind, Events, Interest, Ready, Selector};
use socket2::SockRef;

/// A client whose queue holds this many bytes is not read until it drains.
const QUEUE_LIMIT: usize = 256 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("select_queue_echo")?)?;
    println!(
        "select_queue_echo: listening on tcp://{}",
        listener.local_addr()?
    );
    serve(listener)?;
    Ok(())
}

/// One connected client and its queue.
struct Client {
    stream: TcpStream,
    address: SocketAddr,
    /// What it sent and has not had back yet, chunk by chunk as it arrived.
    queue: VecDeque<Vec<u8>>,
    /// How much of the front chunk was already sent.
    sent: usize,
    /// Bytes in the queue, less what was sent of the front chunk.
    queued: usize,
    /// The client shut its write side: nothing more to read.
    read_closed: bool,
}

/// Serves clients on `listener` until the selector fails.
///
/// # Errors
/// What creating the selector, registering the listener or waiting returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut selector: Selector<()> = Selector::with_backend(BackendKind::Select)?;
    selector.register(&listener, Interest::READ, ())?; // inputs = [sk]
    let mut message: HashMap<RawFd, Client> = HashMap::new();
    let mut events = Events::default();
    loop {
        // select(inputs, outputs, inputs, 0.5): the seed's half-second timeout only loops again.
        selector.select(&mut events, Some(Duration::from_millis(500)))?;
        for event in &events {
            if event.fd() == listener.as_raw_fd() {
                accept(&listener, &mut selector, &mut message);
                continue;
            }
            let Some(client) = message.get_mut(&event.fd()) else {
                continue;
            };
            let result = serve_client(client, event.ready()).and_then(|next| match next {
                Some(interest) => {
                    if selector.get(event.fd()).map(|key| key.interest()) != Some(interest) {
                        selector.modify_interest(event.fd(), interest)?;
                    }
                    Ok(true)
                }
                None => Ok(false),
            });
            match result {
                Ok(true) => {}
                Ok(false) => close(&mut selector, &mut message, event.fd(), None),
                Err(error) => close(&mut selector, &mut message, event.fd(), Some(error)),
            }
        }
    }
}

/// Accepts every pending connection, gives it a queue and watches it for reading and urgent data.
fn accept(
    listener: &TcpListener,
    selector: &mut Selector<()>,
    message: &mut HashMap<RawFd, Client>,
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
        let prepared = stream
            .set_nonblocking(true)
            .and_then(|()| SockRef::from(&stream).set_out_of_band_inline(true));
        if let Err(error) = prepared {
            println!("{address}: {error}");
            continue;
        }
        if let Err(error) = selector.register(&stream, Interest::READ | Interest::PRIORITY, ()) {
            println!("refusing {address}: {error}");
            continue;
        }
        println!("{address}");
        message.insert(
            stream.as_raw_fd(),
            Client {
                stream,
                address,
                queue: VecDeque::new(),
                sent: 0,
                queued: 0,
                read_closed: false,
            },
        );
    }
}

/// Reads what arrived into the queue and writes what the queue holds. Returns what to watch the client
/// for next, or `None` once it is done (it closed its side and has its whole echo back).
fn serve_client(client: &mut Client, ready: Ready) -> io::Result<Option<Interest>> {
    if ready.is_priority() {
        println!("{}: urgent data, read in line", client.address);
    }
    if (ready.is_readable() || ready.is_priority()) && !client.read_closed {
        let mut buffer = [0; 16 * 1024];
        match client.stream.read(&mut buffer) {
            Ok(0) => client.read_closed = true,
            Ok(n) => {
                client.queued += n;
                client.queue.push_back(buffer[..n].to_vec()); // message[r].put(client_data)
            }
            Err(error)
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(error) => return Err(error),
        }
    }
    if ready.is_writable() {
        flush(client)?;
    }
    let reading = !client.read_closed && client.queued < QUEUE_LIMIT;
    let interest = match (reading, client.queue.is_empty()) {
        (true, true) => Interest::READ | Interest::PRIORITY,
        (true, false) => Interest::READ | Interest::PRIORITY | Interest::WRITE,
        (false, false) => Interest::WRITE,
        (false, true) => return Ok(None),
    };
    Ok(Some(interest))
}

/// Sends as much of the queue as the kernel takes now.
fn flush(client: &mut Client) -> io::Result<()> {
    while let Some(front) = client.queue.front() {
        match client.stream.write(&front[client.sent..]) {
            Ok(n) => {
                client.sent += n;
                client.queued -= n;
                if client.sent == front.len() {
                    client.queue.pop_front();
                    client.sent = 0;
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Takes a client out of every list, drops its queue and closes it.
fn close(
    selector: &mut Selector<()>,
    message: &mut HashMap<RawFd, Client>,
    fd: RawFd,
    error: Option<io::Error>,
) {
    // Unregister before the socket is closed (dropped), as the selector's contract asks.
    let _ = selector.unregister(fd);
    if let Some(client) = message.remove(&fd) {
        match error {
            Some(error) => println!("{}: {error}; closing", client.address),
            None => println!("{} closed", client.address),
        }
    }
}

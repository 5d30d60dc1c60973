//! Seeds 002 and 004's `selectors` callback server on iomux's selector (layer 1, the seeds' `selectors`
//! module) over the best backend (epoll on Linux, as `DefaultSelector`): each registration's data is
//! the function to call when its fd is ready — `register(listener, READ, accept)`, then
//! `register(conn, READ, read)` — and the loop dispatches through it (`callback = key.data;
//! callback(key.fileobj, mask)`). Each client gets back what it sends, uppercased.
//!
//! Left out: the seeds' `_SB` suffix after each reply. Corrected: only ASCII `a`–`z` are uppercased and
//! every other byte passes unchanged, so binary and UTF-8 input round-trip (the seeds decode nothing here
//! but `send` may take only part of a reply, which they drop); a reply the kernel takes in part is kept,
//! and the connection's data becomes the `write` callback (watching for writing only, so a client that
//! does not read is not read either) until it is out, then `read` again; the backlog is `SOMAXCONN`, not
//! 5; running out of fds pauses accepting instead of spinning.
//!
//! Layer 2 ([`iomux::event_loop::EventLoop`]) packages this pattern, with the loop owning each source and
//! its callback.
//!
//! `cargo run --example selectors_upper_server [PORT]` (default 8888, 0 lets the kernel choose); the
//! first line says where it listens. Talk to it with `cargo run --example client`.
#![forbid(unsafe_code)]

mod common;

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use iomux::selector::{Events, Interest, Ready, Selector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("selectors_upper_server")?)?;
    println!(
        "selectors_upper_server: listening on tcp://{}",
        listener.local_addr()?
    );
    serve(listener)?;
    Ok(())
}

/// What the selector holds for each fd (Python's `key.data`): the function to call when it is ready.
type Callback = fn(&mut Server, RawFd, Ready);

/// The selector and the sockets behind its fds (Python's `key.fileobj`).
struct Server {
    sel: Selector<Callback>,
    listener: TcpListener,
    conns: HashMap<RawFd, Conn>,
}

/// One client.
struct Conn {
    stream: TcpStream,
    address: SocketAddr,
    /// Reply bytes not yet taken by the kernel; while there are any, the data is `write`.
    output: Vec<u8>,
}

/// Serves clients on `listener` until the selector fails.
///
/// # Errors
/// What creating the selector, registering the listener or waiting returns.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut server = Server {
        sel: Selector::new()?, // selectors.DefaultSelector()
        listener,
        conns: HashMap::new(),
    };
    server
        .sel
        .register(&server.listener, Interest::READ, accept as Callback)?;
    let mut events = Events::default();
    loop {
        server.sel.select(&mut events, None)?;
        for event in &events {
            // A callback earlier in this round may have closed the fd.
            let Some(key) = server.sel.get(event.fd()) else {
                continue;
            };
            let callback = *key.data();
            callback(&mut server, event.fd(), event.ready());
        }
    }
}

/// The listener's callback: accepts every pending connection and registers it with `read`.
fn accept(server: &mut Server, _fd: RawFd, _mask: Ready) {
    loop {
        let (conn, address) = match server.listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            Err(error) => {
                if common::accept_failed(&error) {
                    std::thread::sleep(common::FD_PAUSE);
                }
                return;
            }
        };
        if let Err(error) = conn.set_nonblocking(true) {
            println!("{address}: {error}");
            continue;
        }
        if let Err(error) = server.sel.register(&conn, Interest::READ, read as Callback) {
            println!("refusing {address}: {error}");
            continue;
        }
        server.conns.insert(
            conn.as_raw_fd(),
            Conn {
                stream: conn,
                address,
                output: Vec::new(),
            },
        );
    }
}

/// A client's callback while nothing is owed to it: reads, uppercases and replies.
fn read(server: &mut Server, fd: RawFd, _mask: Ready) {
    let Some(conn) = server.conns.get_mut(&fd) else {
        return;
    };
    let mut data = [0; 1024];
    match conn.stream.read(&mut data) {
        Ok(0) => close(server, fd, None),
        Ok(n) => {
            data[..n].make_ascii_uppercase();
            conn.output.extend_from_slice(&data[..n]);
            send(server, fd);
        }
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
        Err(error) => close(server, fd, Some(error)),
    }
}

/// A client's callback while part of a reply is owed: sends more of it.
fn write(server: &mut Server, fd: RawFd, _mask: Ready) {
    send(server, fd);
}

/// Sends as much of the reply as the kernel takes now, then picks the callback: `write` while some is
/// left, `read` once it is all out.
fn send(server: &mut Server, fd: RawFd) {
    let Some(conn) = server.conns.get_mut(&fd) else {
        return;
    };
    while !conn.output.is_empty() {
        match conn.stream.write(&conn.output) {
            Ok(n) => {
                conn.output.drain(..n);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return close(server, fd, Some(error)),
        }
    }
    let (interest, callback) = if conn.output.is_empty() {
        (Interest::READ, read as Callback)
    } else {
        (Interest::WRITE, write as Callback)
    };
    if server.sel.get(fd).map(|key| key.interest()) != Some(interest)
        && let Err(error) = server.sel.modify(fd, interest, callback)
    {
        close(server, fd, Some(error.into()));
    }
}

/// Unregisters a client and closes it.
fn close(server: &mut Server, fd: RawFd, error: Option<io::Error>) {
    // sel.unregister(conn) before conn.close(), as the selector's contract asks.
    let _ = server.sel.unregister(fd);
    if let Some(conn) = server.conns.remove(&fd) {
        match error {
            Some(error) => println!("closing {}: {error}", conn.address),
            None => println!("closing {}", conn.address),
        }
    }
}

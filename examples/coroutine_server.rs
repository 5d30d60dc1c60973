//! Seed 003's gevent server on iomux's coroutine runtime (layer 3): one coroutine per connection
//! (`gevent.spawn(handle, c)`), written as plain sequential code — `read`, print, answer `OK` — while the
//! runtime switches between connections whenever one would block, as gevent's monkey-patched sockets do.
//!
//! Corrected: bytes are printed escaped, never decoded (binary input cannot crash it); `write_all`
//! sends the whole reply however little the kernel takes at a time (the seed's `send` may drop part of
//! it); the backlog is `SOMAXCONN`, not 3; running out of fds pauses accepting for 10 ms instead of
//! killing the server; a connection's error ends only its own coroutine.
//!
//! `cargo run --example coroutine_server [PORT]` (default 8888, 0 lets the kernel choose); the first line
//! says where it listens.
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use iomux::net::{self, TcpListener, TcpStream};
use iomux::runtime::{Runtime, sleep, spawn};
use socket2::{Domain, Protocol, Socket, Type};

/// What the server answers to every chunk it receives.
const REPLY: &[u8] = b"OK";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = bind(port_from_args()?)?;
    println!(
        "coroutine_server: listening on tcp://{}",
        listener.local_addr()?
    );
    serve(listener)?;
    Ok(())
}

/// The port from the first argument: 8888 as in the seeds when there is none, 0 to let the kernel choose.
fn port_from_args() -> Result<u16, String> {
    match std::env::args().nth(1) {
        None => Ok(8888),
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: coroutine_server [PORT]; {arg:?} is not a port")),
    }
}

/// A listener on 127.0.0.1:`port` with `SO_REUSEADDR` (as the seed) and a full backlog.
pub fn bind(port: u16) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(libc::SOMAXCONN)?;
    Ok(socket.into())
}

/// Serves clients on `listener` forever, one coroutine each.
///
/// # Errors
/// What creating the runtime or registering the listener returns.
pub fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    let runtime = Runtime::new()?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((c, address)) => {
                    println!("connect from {address}");
                    spawn(handle(c, address));
                }
                Err(error) => {
                    // Out of fds (EMFILE) or another refusal: the pending connection stays queued, so
                    // wait a moment rather than retrying at once.
                    let out = if net::is_out_of_resources(&error) {
                        " (out of resources)"
                    } else {
                        ""
                    };
                    println!("accept: {error}{out}; pausing");
                    sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

/// One connection's coroutine: answers every chunk with `OK` until the client closes.
async fn handle(mut c: TcpStream, address: SocketAddr) {
    let mut data = [0; 1024];
    loop {
        let n = match c.read(&mut data).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(error) => {
                println!("{address}: {error}");
                return;
            }
        };
        println!("{address}: {}", data[..n].escape_ascii());
        if let Err(error) = c.write_all(REPLY).await {
            println!("{address}: {error}");
            return;
        }
    }
}

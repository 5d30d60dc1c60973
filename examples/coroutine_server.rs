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

mod common;

use std::io;
use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use iomux::net::{TcpListener, TcpStream};
use iomux::runtime::{Runtime, sleep, spawn};

/// What the server answers to every chunk it receives.
const REPLY: &[u8] = b"OK";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::bind(common::port_from_args("coroutine_server")?)?;
    println!(
        "coroutine_server: listening on tcp://{}",
        listener.local_addr()?
    );
    serve(listener)?;
    Ok(())
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
                    // Out of fds (EMFILE) or another refusal: wait a moment rather than retrying at once.
                    common::accept_failed(&error);
                    sleep(common::FD_PAUSE).await;
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

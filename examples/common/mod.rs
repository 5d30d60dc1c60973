//! What every seed server in `examples/` does the same way, and none of them is about: the port from the
//! command line, the listening socket, and what to do when `accept` fails. Each example says
//! `mod common;`; cargo does not build this folder as an example of its own.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// How long accepting pauses when the process is out of fds: the pending connection stays queued, so
/// accepting again at once (or a level-triggered listener reporting it again) would spin on the error.
pub const FD_PAUSE: Duration = Duration::from_millis(10);

/// The port from the first argument: 8888 as in the seeds when there is none, 0 to let the kernel choose.
/// `name` is the program's, for the usage message.
pub fn port_from_args(name: &str) -> Result<u16, String> {
    match std::env::args().nth(1) {
        None => Ok(8888),
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: {name} [PORT]; {arg:?} is not a port")),
    }
}

/// A non-blocking listener on 127.0.0.1:`port` with `SO_REUSEADDR` (as the seeds) and a full backlog
/// (`SOMAXCONN`, where the seeds' `listen(3)` or `listen(5)` drops connections under load).
pub fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(libc::SOMAXCONN)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Prints why `accept` failed (for anything but `WouldBlock`, which only means no connection is
/// pending) and returns whether the process or the system is out of fds or memory (`EMFILE`, `ENFILE`,
/// …): then the caller pauses accepting for [`FD_PAUSE`].
pub fn accept_failed(error: &io::Error) -> bool {
    let out_of_resources = iomux::net::is_out_of_resources(error);
    if out_of_resources {
        println!("accept: {error}; pausing");
    } else {
        println!("accept: {error}");
    }
    out_of_resources
}

//! [`TcpListener`]: an async listening TCP socket with a full backlog, whose `accept` survives fd
//! exhaustion. Part of the async networking of layer 3.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::TcpStream;
use crate::runtime::BackendKind;
use crate::runtime::reactor::{Direction, Initial, Registration};

/// A TCP socket listening for connections, registered with the runtime of the thread that made it.
///
/// It is bound with `SO_REUSEADDR` (a restarted server can rebind at once) and a backlog of
/// `SOMAXCONN` (the kernel caps it at `net.core.somaxconn`), not the seeds' `listen(5)`, which drops
/// connections under load.
///
/// ```
/// use iomux::net::TcpListener;
/// use iomux::runtime::Runtime;
///
/// Runtime::new()?.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     assert_ne!(listener.local_addr()?.port(), 0);
///     std::io::Result::Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TcpListener {
    /// Declared before the socket: unregistered before it is closed.
    io: Registration,
    listener: std::net::TcpListener,
}

/// Creates a non-blocking, close-on-exec listening socket on `address`.
pub(crate) fn listen(address: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(libc::SOMAXCONN)?;
    Ok(socket.into())
}

/// Calls `attempt` on each address `addresses` resolves to until one succeeds; the last error
/// otherwise.
pub(crate) fn each_address<T>(
    addresses: impl ToSocketAddrs,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for address in addresses.to_socket_addrs()? {
        match attempt(address) {
            Ok(value) => return Ok(value),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

impl TcpListener {
    /// Binds a listener to the first address of `address` that works (port 0: the kernel picks one;
    /// read it with [`local_addr`](TcpListener::local_addr)). A host name is resolved with the system
    /// resolver, which blocks the thread: give an IP address in servers.
    ///
    /// # Errors
    /// What `socket`, `bind` or `listen` return (e.g. `AddrInUse`, `AddrNotAvailable` for `::1` on a
    /// host without IPv6); an error wrapping [`runtime::Error`](crate::runtime::Error) outside a
    /// runtime or if the selector refuses the fd.
    pub fn bind(address: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_address(address, |address| {
            TcpListener::from_std(listen(address, false)?)
        })
    }

    /// Like [`bind`](TcpListener::bind), with `SO_REUSEPORT` too: several listeners (one per thread)
    /// bind the same port and the kernel spreads new connections over them.
    ///
    /// # Errors
    /// As [`bind`](TcpListener::bind).
    pub fn bind_reuse_port(address: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_address(address, |address| {
            TcpListener::from_std(listen(address, true)?)
        })
    }

    /// Registers a listener made elsewhere (made non-blocking here).
    ///
    /// # Errors
    /// As [`bind`](TcpListener::bind), for the registration.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let io = Registration::new(&listener, Initial::Optimistic)?;
        Ok(TcpListener { io, listener })
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// What `getsockname(2)` returns.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The backend of the runtime the listener is registered with.
    pub fn backend(&self) -> BackendKind {
        self.io.backend()
    }

    /// Waits for a connection and returns it with the peer's address. The new stream is non-blocking,
    /// close-on-exec and registered with the current runtime.
    ///
    /// Connections the peer aborted before they were accepted (`ECONNABORTED`) and the network errors
    /// `accept(2)` says to treat as "try again" are skipped.
    ///
    /// # Errors
    /// - Out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM; see
    ///   [`is_out_of_resources`](super::is_out_of_resources)): the listener stays open and registered and
    ///   the pending connection stays queued. Pause before the next `accept` (e.g.
    ///   [`sleep`](crate::runtime::sleep) 10 ms), or it fails again at once: the runtime does not wait
    ///   for fds to be freed.
    /// - The selector refuses the new fd (select and an fd ≥ 1024: an `io::Error` of kind
    ///   `InvalidInput` wrapping [`selector::Error::FdTooLarge`](crate::selector::Error::FdTooLarge),
    ///   reachable with `get_ref()` and `downcast_ref`): that connection is closed; keep accepting.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll form of [`accept`](TcpListener::accept), for hand-written futures.
    ///
    /// # Errors
    /// As [`accept`](TcpListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        loop {
            match self.io.poll_ready(Direction::Read, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
            match accept_nonblocking(&self.listener) {
                Ok((socket, peer)) => {
                    let Some(peer) = peer.as_socket() else {
                        // A TCP listener only accepts IP peers; skip anything else.
                        continue;
                    };
                    return Poll::Ready(
                        TcpStream::from_accepted(socket).map(|stream| (stream, peer)),
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.io.clear_ready(Direction::Read);
                }
                Err(error) if is_retryable(&error) => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// Errors after which `accept` should simply be called again: a signal, a connection aborted before
/// it was accepted, and the pending network errors `accept(2)` (Linux notes) says to treat like EAGAIN.
pub(crate) fn is_retryable(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Interrupted
        || matches!(
            error.raw_os_error(),
            Some(
                libc::ECONNABORTED
                    | libc::EPROTO
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETDOWN
                    | libc::ENETUNREACH
            )
        )
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one system call per connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(Socket, socket2::SockAddr)> {
    SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
}

/// `accept(2)` (close-on-exec) and then `O_NONBLOCK`, where `accept4` is missing.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(Socket, socket2::SockAddr)> {
    let (socket, peer) = SockRef::from(listener).accept()?;
    socket.set_nonblocking(true)?;
    Ok((socket, peer))
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.listener.as_raw_fd())
            .field("local_addr", &self.listener.local_addr().ok())
            .finish()
    }
}

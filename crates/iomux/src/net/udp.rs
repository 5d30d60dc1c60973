//! [`UdpSocket`], an async UDP socket with `send_to` and `recv_from`. Part of the async networking of
//! layer 3.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::listener::each_address;
use super::stream::SEND_FLAGS;
use crate::runtime::BackendKind;
use crate::runtime::reactor::{Direction, Initial, Registration};

/// A UDP socket registered with the runtime of the thread that made it.
///
/// ```
/// use iomux::net::UdpSocket;
/// use iomux::runtime::Runtime;
///
/// Runtime::new()?.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buffer = [0; 16];
///     let (len, from) = b.recv_from(&mut buffer).await?;
///     assert_eq!((&buffer[..len], from), (&b"ping"[..], a.local_addr()?));
///     std::io::Result::Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UdpSocket {
    /// Declared before the socket: unregistered before it is closed.
    io: Registration,
    socket: std::net::UdpSocket,
}

impl UdpSocket {
    /// Binds a socket to the first address of `address` that works (port 0: the kernel picks one).
    ///
    /// # Errors
    /// What `socket` or `bind` return; an error wrapping [`runtime::Error`](crate::runtime::Error)
    /// outside a runtime or if the selector refuses the fd.
    pub fn bind(address: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_address(address, |address| {
            let socket = Socket::new(
                Domain::for_address(address),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            socket.set_nonblocking(true)?;
            socket.bind(&address.into())?;
            UdpSocket::from_std(socket.into())
        })
    }

    /// Registers a socket made elsewhere (made non-blocking here).
    ///
    /// # Errors
    /// As [`bind`](UdpSocket::bind), for the registration.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        let io = Registration::new(&socket, Initial::Optimistic)?;
        Ok(UdpSocket { io, socket })
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    /// What `getsockname(2)` returns.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The backend of the runtime the socket is registered with.
    pub fn backend(&self) -> BackendKind {
        self.io.backend()
    }

    /// Sends one datagram to `target`; returns the bytes sent (all of them: UDP does not split).
    ///
    /// # Errors
    /// What `sendto(2)` returns (e.g. `EMSGSIZE` for a datagram over 65,507 bytes).
    pub async fn send_to(&self, buffer: &[u8], target: SocketAddr) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send_to(cx, buffer, target)).await
    }

    /// The poll form of [`send_to`](UdpSocket::send_to).
    ///
    /// # Errors
    /// As [`send_to`](UdpSocket::send_to).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buffer: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let target = target.into();
        self.io.poll_io(Direction::Write, cx, || {
            SockRef::from(&self.socket).send_to_with_flags(buffer, &target, SEND_FLAGS)
        })
    }

    /// Receives one datagram into `buffer`; returns its length and sender. A datagram longer than the
    /// buffer is cut to fit (the rest is lost, as with `recvfrom(2)`).
    ///
    /// # Errors
    /// What `recvfrom(2)` returns (e.g. `ConnectionRefused` after an ICMP port-unreachable).
    pub async fn recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buffer)).await
    }

    /// The poll form of [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Errors
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io
            .poll_io(Direction::Read, cx, || self.socket.recv_from(buffer))
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.socket.as_raw_fd())
            .field("local_addr", &self.socket.local_addr().ok())
            .finish()
    }
}

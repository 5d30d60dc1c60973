//! [`TcpStream`], an async TCP connection implementing `futures-io`'s `AsyncRead` and `AsyncWrite`, and
//! its owned halves. Part of the async networking of layer 3.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::runtime::BackendKind;
use crate::runtime::reactor::{Direction, Initial, Registration};
use crate::sys::socket;

/// `send` flags: never raise SIGPIPE on a connection the peer closed (`EPIPE` is returned instead).
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// `send` flags: Apple has no `MSG_NOSIGNAL`; `socket2` sets `SO_NOSIGPIPE` on the sockets it makes.
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// A TCP connection registered with the runtime of the thread that made it.
///
/// Read and write it through `futures-io`'s traits (with `futures-lite`'s `AsyncReadExt` and
/// `AsyncWriteExt`), on the stream itself or on `&TcpStream`, so one task can read while another —
/// or the same task, in a join — writes. [`AsyncWrite::poll_close`] shuts down the write side
/// (a half-close: the peer reads end of stream and can still answer).
pub struct TcpStream {
    /// Declared before the socket: unregistered before it is closed.
    io: Registration,
    stream: std::net::TcpStream,
}

impl TcpStream {
    /// Connects to the first address of `address` that accepts. A host name is resolved with the system
    /// resolver, which blocks the thread.
    ///
    /// # Errors
    /// What the connection attempt returns (e.g. `ConnectionRefused`); an error wrapping
    /// [`runtime::Error`](crate::runtime::Error) outside a runtime or if the selector refuses the fd.
    pub async fn connect(address: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addresses: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
        let mut last = None;
        for address in addresses {
            match TcpStream::connect_to(address).await {
                Ok(stream) => return Ok(stream),
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

    async fn connect_to(address: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        match socket.connect(&address.into()) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(error) => return Err(error),
        }
        let io = Registration::new(&socket, Initial::Unknown)?;
        let stream = TcpStream {
            io,
            stream: socket.into(),
        };
        loop {
            poll_fn(|cx| stream.io.poll_ready(Direction::Write, cx)).await?;
            if let Some(error) = stream.stream.take_error()? {
                return Err(error);
            }
            match stream.stream.peer_addr() {
                Ok(_) => return Ok(stream),
                // Writable before the handshake finished: wait for the next event.
                Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                    stream.io.clear_ready(Direction::Write);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Registers an accepted socket (already non-blocking).
    pub(crate) fn from_accepted(socket: Socket) -> io::Result<TcpStream> {
        let io = Registration::new(&socket, Initial::Optimistic)?;
        Ok(TcpStream {
            io,
            stream: socket.into(),
        })
    }

    /// Registers a connected stream made elsewhere (made non-blocking here).
    ///
    /// # Errors
    /// An error wrapping [`runtime::Error`](crate::runtime::Error) outside a runtime or if the selector
    /// refuses the fd.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        let io = Registration::new(&stream, Initial::Optimistic)?;
        Ok(TcpStream { io, stream })
    }

    /// The peer's address.
    ///
    /// # Errors
    /// What `getpeername(2)` returns (`NotConnected` once the connection is gone).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    /// What `getsockname(2)` returns.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of waiting for Nagle's algorithm.
    ///
    /// # Errors
    /// What `setsockopt(2)` returns.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// What `getsockopt(2)` returns.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.stream.nodelay()
    }

    /// Shuts down the read side, the write side or both. [`Shutdown::Write`] is a half-close: the peer
    /// reads end of stream and can still send.
    ///
    /// # Errors
    /// What `shutdown(2)` returns (`NotConnected` once the connection is gone).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    ///
    /// # Errors
    /// What `getsockopt(2)` returns.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.stream.take_error()
    }

    /// The backend of the runtime the stream is registered with.
    pub fn backend(&self) -> BackendKind {
        self.io.backend()
    }

    /// Splits the stream into a read half and a write half that can go to different tasks. Dropping
    /// both closes the connection.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let stream = Rc::new(self);
        (
            ReadHalf {
                stream: Rc::clone(&stream),
            },
            WriteHalf { stream },
        )
    }

    fn read_inner(&self, cx: &mut Context<'_>, buffer: &mut [u8]) -> Poll<io::Result<usize>> {
        if buffer.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let result = self.io.poll_io(Direction::Read, cx, || {
            socket::recv(self.stream.as_fd(), buffer)
        });
        if let Poll::Ready(Ok(read)) = result
            && read > 0
            && read < buffer.len()
        {
            self.io.clear_read_after_short_read();
        }
        result
    }

    fn write_inner(&self, cx: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        if buffer.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.io.poll_io(Direction::Write, cx, || {
            socket::send(self.stream.as_fd(), buffer)
        })
    }

    fn write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if buffers.iter().all(|buffer| buffer.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.io.poll_io(Direction::Write, cx, || {
            SockRef::from(&self.stream).send_vectored_with_flags(buffers, SEND_FLAGS)
        })
    }

    fn close_inner(&self) -> Poll<io::Result<()>> {
        match self.stream.shutdown(Shutdown::Write) {
            Err(error) if error.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.read_inner(cx, buffer)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.read_inner(cx, buffer)
    }
}

impl AsyncWrite for &TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_inner(cx, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_vectored_inner(cx, buffers)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close_inner()
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_inner(cx, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_vectored_inner(cx, buffers)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close_inner()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.stream.as_raw_fd())
            .field("local_addr", &self.stream.local_addr().ok())
            .field("peer_addr", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// The read half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct ReadHalf {
    stream: Rc<TcpStream>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::into_split`]. Closing it
/// ([`AsyncWrite::poll_close`]) shuts down the write side; dropping it does not.
#[derive(Debug)]
pub struct WriteHalf {
    stream: Rc<TcpStream>,
}

impl ReadHalf {
    /// The whole stream, for its addresses and options.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl WriteHalf {
    /// The whole stream, for its addresses and options.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.read_inner(cx, buffer)
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.write_inner(cx, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.write_vectored_inner(cx, buffers)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.close_inner()
    }
}

//! Async sockets on the coroutine runtime (layer 3): [`TcpListener`], [`TcpStream`] (implementing the
//! `futures-io` [`AsyncRead`](futures_io::AsyncRead) and [`AsyncWrite`](futures_io::AsyncWrite) traits,
//! so `futures-lite`'s helpers work on it) and [`UdpSocket`], over IPv4 and IPv6.
//!
//! Every socket is created non-blocking and close-on-exec with `socket2`, and registered with the
//! runtime running on this thread when it is created, so create them inside
//! [`Runtime::block_on`](crate::runtime::Runtime::block_on). They are not `Send`: each belongs to its
//! runtime's thread. One task may read and another write the same socket at once (through `&TcpStream`
//! or [`TcpStream::into_split`]); two tasks reading the same socket at once is not supported — only the
//! last one to wait is woken.
//!
//! Sends use `MSG_NOSIGNAL`, so writing to a connection the peer closed returns `EPIPE`
//! ([`BrokenPipe`](std::io::ErrorKind::BrokenPipe)) and never raises SIGPIPE, whatever the process's
//! signal disposition.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use iomux::net::{TcpListener, TcpStream};
//! use iomux::runtime::{Runtime, spawn};
//!
//! Runtime::new()?.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let address = listener.local_addr()?;
//!     let server = spawn(async move {
//!         let (mut stream, _) = listener.accept().await?;
//!         let mut buffer = [0; 5];
//!         stream.read_exact(&mut buffer).await?;
//!         stream.write_all(&buffer).await?;
//!         std::io::Result::Ok(())
//!     });
//!     let mut client = TcpStream::connect(address).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echoed = [0; 5];
//!     client.read_exact(&mut echoed).await?;
//!     assert_eq!(&echoed, b"hello");
//!     server.await??;
//!     std::io::Result::Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod listener;
mod stream;
mod udp;

use std::io;

pub use self::listener::TcpListener;
pub(crate) use self::listener::{accept_nonblocking, each_address, is_retryable, listen};
pub use self::stream::{ReadHalf, TcpStream, WriteHalf};
pub use self::udp::UdpSocket;

/// Whether `error` means the process or the system ran out of a resource a new connection needs:
/// EMFILE (per-process fd limit), ENFILE (system-wide), ENOBUFS or ENOMEM.
///
/// [`TcpListener::accept`] returns these without closing the listener or losing the pending
/// connection; a server should pause accepting for a moment (for example `sleep(10 ms)`) — calling
/// `accept` again at once would spin on the same error — and go on once fds are freed.
pub fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

//! The coroutine model of the echo server: one [`Runtime`] per worker and one task per connection,
//! written as straight-line code that awaits (the seeds' gevent server, with its partial writes and
//! binary data handled). Layer 4, the echo server.
//!
//! A connection's task reads into the worker's shared buffer and writes straight back within one
//! poll — the buffer is never held across an `await` — so an idle connection owns no buffer. Only
//! what the socket does not take is copied into the task's own buffer, which it then writes out,
//! awaiting, before it reads again.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::{ACCEPT_PAUSE, AcceptFailures, Bound, Mode, READ_BUFFER_BYTES, Settings, Started};
use crate::net::{TcpListener, TcpStream, UdpSocket};
use crate::runtime::workers::Shutdown;
use crate::runtime::{Runtime, sleep, spawn};
use crate::selector;

/// Runs one coroutine worker on `socket` until it is stopped; its connections' tasks are dropped,
/// closing them, with the runtime.
pub(super) fn run(socket: Bound, settings: Settings, started: Started) -> io::Result<()> {
    let runtime = Runtime::with_backend(settings.backend)?;
    let shared = Rc::new(Shared {
        mode: settings.mode,
        buffer: RefCell::new(vec![0; READ_BUFFER_BYTES].into_boxed_slice()),
    });
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    runtime.block_on(async move {
        let serve_stop = move || stop.trigger();
        match socket {
            Bound::Tcp(listener) => {
                let listener = TcpListener::from_std(listener)?;
                started.serving(serve_stop);
                until(accept_loop(listener, shared), &shutdown).await;
            }
            Bound::Udp(socket) => {
                let socket = UdpSocket::from_std(socket)?;
                started.serving(serve_stop);
                until(datagrams(socket, shared), &shutdown).await;
            }
        }
        Ok(())
    })
}

/// What every task of one worker shares.
struct Shared {
    mode: Mode,
    /// Every read goes here first; borrowed only within one poll.
    buffer: RefCell<Box<[u8]>>,
}

/// Runs `work` until it ends or `shutdown` is triggered.
async fn until(work: impl Future<Output = ()>, shutdown: &Shutdown) {
    let mut work = pin!(work);
    let mut stop = shutdown.wait();
    poll_fn(|cx| {
        if Pin::new(&mut stop).poll(cx).is_ready() || work.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Accepts connections and spawns a task for each, for ever.
async fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                failures.succeeded();
                // Replies go out at once, never held back waiting for an ACK.
                let _ = stream.set_nodelay(true);
                // The task runs on its own; its handle is not needed.
                drop(spawn(connection(stream, Rc::clone(&shared))));
            }
            Err(error) => match fd_too_large(&error) {
                // The net layer has closed that connection; the next one may fit.
                Some(refused) => super::log_refused(None, refused),
                None => {
                    // Out of fds or memory: accepting again at once would fail again at once.
                    failures.failed(&error);
                    sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
}

/// The typed error of a connection the selector refused (select and an fd at or above
/// `FD_SETSIZE`), if that is what `error` is.
fn fd_too_large(error: &io::Error) -> Option<&selector::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<selector::Error>())
        .filter(|inner| matches!(inner, selector::Error::FdTooLarge { .. }))
}

/// One connection's task: echo until end of stream or an error, then close.
///
/// Both steps await a `poll_fn` over the task's own few words of state (no nested `async fn`), so the
/// task is small and a message touches little of its memory.
async fn connection(stream: TcpStream, shared: Rc<Shared>) {
    let mut pending = Pending::default();
    loop {
        match poll_fn(|cx| echo(&stream, &shared, &mut pending.data, cx)).await {
            // End of stream, with everything written back (half-close), or a failed connection.
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // The client is not read until its output is written: that bounds what it can pile up.
        if !pending.data.is_empty()
            && poll_fn(|cx| flush(&stream, &mut pending, cx))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Output the socket has not taken yet: empty and unallocated unless the client reads slower than it
/// sends.
#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    /// How much of `data` has been written.
    written: usize,
}

/// Reads once into the shared buffer, transforms, and writes once; appends to `pending` what the
/// socket did not take. Returns the number of bytes read (0 at end of stream).
#[inline]
fn echo(
    stream: &TcpStream,
    shared: &Shared,
    pending: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut io = stream;
    let mut buffer = shared.buffer.borrow_mut();
    let read = match Pin::new(&mut io).poll_read(cx, &mut buffer) {
        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
        Poll::Ready(Ok(read)) => read,
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Pending => return Poll::Pending,
    };
    let data = &mut buffer[..read];
    shared.mode.apply(data);
    match Pin::new(&mut io).poll_write(cx, data) {
        Poll::Ready(Ok(written)) => pending.extend_from_slice(&data[written..]),
        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        Poll::Pending => pending.extend_from_slice(data),
    }
    Poll::Ready(Ok(read))
}

/// Writes all of `pending`, waiting for room as needed, then frees it.
fn flush(stream: &TcpStream, pending: &mut Pending, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut io = stream;
    while pending.written < pending.data.len() {
        match Pin::new(&mut io).poll_write(cx, &pending.data[pending.written..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(written)) => pending.written += written,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
    }
    *pending = Pending::default();
    Poll::Ready(Ok(()))
}

/// Answers datagrams, for ever. The only task of its worker, so it keeps the worker's buffer.
async fn datagrams(socket: UdpSocket, shared: Rc<Shared>) {
    let mut buffer = shared.buffer.take();
    loop {
        // An error queued on the socket (an ICMP report for an earlier reply) is consumed by the call
        // that returns it; go on with the next datagram.
        if let Ok((read, peer)) = socket.recv_from(&mut buffer).await {
            let data = &mut buffer[..read];
            shared.mode.apply(data);
            let _ = socket.send_to(data, peer).await;
        }
    }
}

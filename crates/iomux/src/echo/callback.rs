//! The callback model of the echo server: one [`EventLoop`] per worker, holding one handler per
//! socket — the listener, each connection, or the UDP socket — as variants of [`Source`], so every
//! event is a direct call. Layer 4, the echo server.
//!
//! Connections are registered for reading, edge-triggered on epoll (level-triggered on select and
//! poll, which have no edges). A message costs one wait, one `read` into the worker's shared buffer and
//! one `write`: no allocation and no `epoll_ctl`. Only when the socket takes less than was read is the
//! rest copied into the connection's own buffer and the interest switched to writing (so the client is
//! not read meanwhile); once that buffer is written, it is freed and the interest goes back to reading.
//!
//! Edge triggering spares the kernel a check per event: a level-triggered epoll entry that was reported
//! goes back on the ready list and is polled again at the next wait, only to be found empty. The price
//! is the rule that a reported socket must be drained: a read that fills the buffer is followed by
//! another, and a read shorter than the buffer means the kernel handed over all it had — new data will
//! bring a new edge — unless the peer has shut down its side (`EPOLLRDHUP`), whose end of stream is
//! reported once, so then the connection reads on to it (nginx and tokio rely on the same).

use std::cell::RefCell;
use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;

use super::{ACCEPT_PAUSE, AcceptFailures, Bound, Mode, READ_BUFFER_BYTES, Settings, Started};
use crate::event_loop::{BackendKind, Builder, EventLoop, Handler, Interest, Ready, Trigger};
use crate::net::{accept_nonblocking, is_retryable};
use crate::sys::socket;

/// How many connections one listener event accepts at most, so a flood of connections cannot keep
/// the loop from serving the ones it has.
const ACCEPT_BATCH: usize = 128;

/// How many datagrams one event of the UDP socket answers at most, for the same reason.
const DATAGRAM_BATCH: usize = 128;

/// How many full reads one event of an edge-triggered connection makes at most, so a client that keeps
/// its socket full cannot hold the loop; it is then re-armed (`EPOLL_CTL_MOD` re-checks readiness and
/// reports it again at the next wait), so nothing is lost.
const READS_PER_EVENT: usize = 16;

/// Runs one callback worker on `socket` until it is stopped.
pub(super) fn run(socket: Bound, settings: Settings, started: Started) -> io::Result<()> {
    let mut event_loop = Builder::new().backend(settings.backend).build::<Source>()?;
    let shared = Rc::new(Shared {
        mode: settings.mode,
        trigger: if event_loop.backend() == BackendKind::Epoll {
            Trigger::Edge
        } else {
            Trigger::Level
        },
        buffer: RefCell::new(vec![0; READ_BUFFER_BYTES].into_boxed_slice()),
    });
    let source = match socket {
        Bound::Tcp(listener) => Source::Listener(Listener {
            listener: Rc::new(listener),
            shared,
            failures: AcceptFailures::default(),
        }),
        Bound::Udp(socket) => Source::Datagrams(Datagrams { socket, shared }),
    };
    event_loop.register_handler(source, Interest::READ)?;
    let handle = event_loop.handle();
    started.serving(move || {
        // Fails only once the loop is gone, i.e. already stopped.
        let _ = handle.stop();
    });
    event_loop.run()?;
    Ok(())
}

/// What every handler of one worker shares.
struct Shared {
    mode: Mode,
    /// How connections are registered: [`Trigger::Edge`] on epoll, else [`Trigger::Level`].
    trigger: Trigger,
    /// Every read goes here first; borrowed only for the length of one handler call.
    buffer: RefCell<Box<[u8]>>,
}

/// A socket registered with a worker's loop, with its state.
enum Source {
    Listener(Listener),
    Connection(Connection),
    Datagrams(Datagrams),
}

impl Handler for Source {
    #[inline]
    fn ready(&mut self, event_loop: &mut EventLoop<Source>, ready: Ready) {
        match self {
            Source::Connection(connection) => connection.ready(event_loop, ready),
            Source::Listener(listener) => listener.ready(event_loop),
            Source::Datagrams(datagrams) => datagrams.ready(ready),
        }
    }
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Listener(listener) => listener.listener.as_fd(),
            Source::Connection(connection) => connection.stream.as_fd(),
            Source::Datagrams(datagrams) => datagrams.socket.as_fd(),
        }
    }
}

/// The listening socket.
struct Listener {
    /// Shared with the timer that re-registers it after a pause, so unregistering the handler does
    /// not close it.
    listener: Rc<TcpListener>,
    shared: Rc<Shared>,
    failures: AcceptFailures,
}

impl Listener {
    fn ready(&mut self, event_loop: &mut EventLoop<Source>) {
        for _ in 0..ACCEPT_BATCH {
            match accept_nonblocking(&self.listener) {
                Ok((socket, peer)) => {
                    self.failures.succeeded();
                    let stream = TcpStream::from(socket);
                    // Replies go out at once, never held back waiting for an ACK.
                    let _ = stream.set_nodelay(true);
                    let trigger = self.shared.trigger;
                    let connection = Source::Connection(Connection {
                        stream,
                        shared: Rc::clone(&self.shared),
                        pending: Vec::new(),
                        written: 0,
                    });
                    // On error the handler, and with it the connection, is already closed.
                    if let Err(error) =
                        event_loop.register_handler_with(connection, Interest::READ, trigger)
                    {
                        super::log_refused(peer.as_socket(), &error);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if is_retryable(&error) => {}
                Err(error) => {
                    // Out of fds or memory: the listener stays readable, so accepting again at once
                    // would spin. Stop watching it for a moment.
                    self.failures.failed(&error);
                    self.pause(event_loop);
                    return;
                }
            }
        }
    }

    /// Unregisters the listener (its socket stays open) and re-registers it after [`ACCEPT_PAUSE`].
    fn pause(&self, event_loop: &mut EventLoop<Source>) {
        let paused = Paused {
            listener: Rc::clone(&self.listener),
            shared: Rc::clone(&self.shared),
            failures: self.failures,
        };
        if event_loop.unregister(self.listener.as_raw_fd()).is_ok() {
            event_loop.call_later(ACCEPT_PAUSE, move |event_loop| paused.resume(event_loop));
        }
    }
}

/// A listener waiting out a pause.
struct Paused {
    listener: Rc<TcpListener>,
    shared: Rc<Shared>,
    failures: AcceptFailures,
}

impl Paused {
    fn resume(self, event_loop: &mut EventLoop<Source>) {
        let listener = Source::Listener(Listener {
            listener: Rc::clone(&self.listener),
            shared: Rc::clone(&self.shared),
            failures: self.failures,
        });
        if let Err(error) = event_loop.register_handler(listener, Interest::READ) {
            // The selector refused it for now (out of memory): try again after another pause.
            super::log(format_args!(
                "watching the listener again failed: {}; retrying",
                super::Chain(&error)
            ));
            event_loop.call_later(ACCEPT_PAUSE, move |event_loop| self.resume(event_loop));
        }
    }
}

/// One client connection.
struct Connection {
    stream: TcpStream,
    shared: Rc<Shared>,
    /// Output the socket has not taken yet; empty and unallocated unless the client reads slower than
    /// it sends. At most one read's worth: the client is not read while it is non-empty.
    pending: Vec<u8>,
    /// How much of `pending` has been written.
    written: usize,
}

/// What a connection waits for next.
enum Next {
    /// The same as before.
    Same,
    /// Writing its pending output (and not reading).
    Writable,
    /// Reading again: its output is all written.
    Readable,
    /// Nothing: it is done or failed.
    Close,
}

impl Connection {
    #[inline]
    fn ready(&mut self, event_loop: &mut EventLoop<Source>, ready: Ready) {
        let next = if self.pending.is_empty() {
            self.echo(ready)
        } else {
            self.flush()
        };
        let fd = self.stream.as_raw_fd();
        let changed = match next {
            Next::Same => return,
            Next::Writable => event_loop.modify(fd, Interest::WRITE),
            Next::Readable => event_loop.modify(fd, Interest::READ),
            Next::Close => event_loop.unregister(fd).map(drop),
        };
        if changed.is_err() {
            // The selector refused the change: drop the connection rather than leave it stuck.
            let _ = event_loop.unregister(fd);
        }
    }

    /// Reads, transforms, writes; keeps what the socket did not take. Level-triggered, once per
    /// event; edge-triggered, until the socket is drained (see the module docs).
    #[inline]
    fn echo(&mut self, ready: Ready) -> Next {
        let edge = self.shared.trigger == Trigger::Edge;
        // After the peer's shutdown (or an error), a short read does not mean drained: read on to the
        // end of stream, which is reported only once.
        let shut = ready.is_read_closed() || ready.is_hup() || ready.is_error();
        let mut buffer = self.shared.buffer.borrow_mut();
        for _ in 0..READS_PER_EVENT {
            let read = match socket::recv(self.stream.as_fd(), &mut buffer) {
                // End of stream: everything read was written, so the client has it all (half-close).
                Ok(0) => return Next::Close,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Next::Same,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            };
            let data = &mut buffer[..read];
            self.shared.mode.apply(data);
            let written = match socket::send(self.stream.as_fd(), data) {
                Ok(written) => written,
                Err(error) if is_transient(&error) => 0,
                Err(_) => return Next::Close,
            };
            if written < read {
                self.pending.extend_from_slice(&data[written..]);
                return Next::Writable;
            }
            if !edge || (read < buffer.len() && !shut) {
                // Level: the next wait reports what is left. Edge: a short read took all there was.
                return Next::Same;
            }
        }
        // Still readable after a full budget: re-arming makes the next wait report it again.
        Next::Readable
    }

    /// Writes what is pending (edge-triggered: until the socket is full); once all is written, frees
    /// the buffer and reads again.
    fn flush(&mut self) -> Next {
        loop {
            match socket::send(self.stream.as_fd(), &self.pending[self.written..]) {
                Ok(written) => {
                    self.written += written;
                    if self.written == self.pending.len() {
                        self.pending = Vec::new();
                        self.written = 0;
                        return Next::Readable;
                    }
                    if written == 0 || self.shared.trigger != Trigger::Edge {
                        return Next::Same;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Next::Same,
                Err(_) => return Next::Close,
            }
        }
    }
}

/// The UDP socket.
struct Datagrams {
    socket: UdpSocket,
    shared: Rc<Shared>,
}

impl Datagrams {
    fn ready(&mut self, _ready: Ready) {
        let mut buffer = self.shared.buffer.borrow_mut();
        for _ in 0..DATAGRAM_BATCH {
            match self.socket.recv_from(&mut buffer) {
                Ok((read, peer)) => {
                    let data = &mut buffer[..read];
                    self.shared.mode.apply(data);
                    // A reply the socket cannot take now is dropped: UDP promises no delivery.
                    let _ = self.socket.send_to(data, peer);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // An error queued on the socket (an ICMP report for an earlier reply) is consumed by
                // the call that returns it; go on with the next datagram.
                Err(_) => {}
            }
        }
    }
}

/// Whether an IO call should simply be tried again at the next readiness.
#[inline]
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

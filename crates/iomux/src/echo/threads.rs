//! The threads model of the echo server: blocking std sockets, one thread accepting and one thread per
//! connection (the seeds' `socketserver.ThreadingTCPServer`), with no selector at all — the baseline
//! the callback and coroutine models are measured against. Layer 4, the echo server.
//!
//! A blocking `write_all` is the backpressure here: a client that does not read blocks its own thread,
//! never the others, and its thread holds one small buffer. Stopping shuts the listening socket down
//! (on Linux that wakes the blocked `accept` with `EINVAL`) and every connection (waking their blocked
//! reads and writes), then waits for the connection threads to end.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{ACCEPT_PAUSE, AcceptFailures, Bound, Mode, Settings, Started, lock};
use crate::net::is_retryable;

/// Each connection thread's read buffer.
const CONNECTION_BUFFER_BYTES: usize = 16 * 1024;

/// Each connection thread's stack: it only reads, transforms and writes.
const CONNECTION_STACK_BYTES: usize = 128 * 1024;

/// The size of a UDP datagram's buffer: the largest UDP payload.
const DATAGRAM_BUFFER_BYTES: usize = 64 * 1024;

/// How long stopping waits for the connection threads to end (they are woken at once, so this only
/// bounds a wait that cannot normally be long).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Runs the accepting thread (TCP) or the answering thread (UDP) until stopped.
pub(super) fn run(socket: Bound, settings: Settings, started: Started) -> io::Result<()> {
    match socket {
        Bound::Tcp(listener) => run_tcp(listener, settings.mode, started),
        Bound::Udp(socket) => run_udp(socket, settings.mode, started),
    }
}

/// The connections alive, so stopping can wake them.
#[derive(Default)]
struct Connections {
    state: Mutex<Live>,
    /// Signalled when the last connection ends.
    empty: Condvar,
}

#[derive(Default)]
struct Live {
    /// Set once by stop; no connection is added after that.
    stopping: bool,
    next_id: u64,
    streams: HashMap<u64, Arc<TcpStream>>,
}

impl Connections {
    /// Records a new connection; `None` if the server is stopping (the connection is then dropped).
    fn insert(&self, stream: &Arc<TcpStream>) -> Option<u64> {
        let mut live = lock(&self.state);
        if live.stopping {
            return None;
        }
        let id = live.next_id;
        live.next_id += 1;
        live.streams.insert(id, Arc::clone(stream));
        Some(id)
    }

    fn remove(&self, id: u64) {
        let mut live = lock(&self.state);
        live.streams.remove(&id);
        if live.streams.is_empty() {
            self.empty.notify_all();
        }
    }

    fn is_stopping(&self) -> bool {
        lock(&self.state).stopping
    }

    /// Marks the server stopping and wakes every connection's blocked call.
    fn stop(&self) {
        let mut live = lock(&self.state);
        live.stopping = true;
        for stream in live.streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Waits (at most [`STOP_WAIT`]) until every connection thread has ended.
    fn wait_empty(&self) {
        let deadline = Instant::now() + STOP_WAIT;
        let mut live = lock(&self.state);
        while !live.streams.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            live = self
                .empty
                .wait_timeout(live, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

fn run_tcp(listener: TcpListener, mode: Mode, started: Started) -> io::Result<()> {
    listener.set_nonblocking(false)?;
    let listener = Arc::new(listener);
    let connections = Arc::new(Connections::default());
    {
        let listener = Arc::clone(&listener);
        let connections = Arc::clone(&connections);
        started.serving(move || {
            connections.stop();
            // Wakes the blocked accept (EINVAL from then on); the error only says it was not
            // connected, which a listener never is.
            let _ = SockRef::from(&*listener).shutdown(Shutdown::Read);
        });
    }
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = listener.accept();
        if connections.is_stopping() {
            break;
        }
        match accepted {
            Ok((stream, peer)) => {
                failures.succeeded();
                // Replies go out at once, never held back waiting for an ACK.
                let _ = stream.set_nodelay(true);
                let stream = Arc::new(stream);
                let Some(id) = connections.insert(&stream) else {
                    break;
                };
                let spawned = thread::Builder::new()
                    .name("iomux-echo-connection".to_owned())
                    .stack_size(CONNECTION_STACK_BYTES)
                    .spawn({
                        let connections = Arc::clone(&connections);
                        move || {
                            serve_connection(&stream, mode);
                            drop(stream);
                            connections.remove(id);
                        }
                    });
                if let Err(error) = spawned {
                    // Out of threads or memory: close this one and pause, as for EMFILE.
                    connections.remove(id);
                    super::log(format_args!(
                        "closed the connection from {peer}: no thread for it: {error}"
                    ));
                    failures.failed(&error);
                    thread::sleep(ACCEPT_PAUSE);
                }
            }
            Err(error) if is_retryable(&error) => {}
            Err(error) => {
                failures.failed(&error);
                thread::sleep(ACCEPT_PAUSE);
            }
        }
    }
    connections.stop();
    connections.wait_empty();
    Ok(())
}

/// Echoes one connection until end of stream or an error.
fn serve_connection(stream: &TcpStream, mode: Mode) {
    let mut io = stream;
    let mut buffer = vec![0; CONNECTION_BUFFER_BYTES];
    loop {
        let read = match io.read(&mut buffer) {
            // End of stream: everything was written back (half-close); returning closes it.
            Ok(0) => return,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let data = &mut buffer[..read];
        mode.apply(data);
        if io.write_all(data).is_err() {
            return;
        }
    }
}

/// Waits for the next datagram and reads it into `buffer`: its length and sender, or `None` when the
/// wait was ended by `shutdown` with no datagram. The sender is peeked through socket2, whose address
/// storage starts zeroed: the kernel writes no address then, and std's `UdpSocket::recv_from` would
/// read its uninitialised address storage (found by valgrind in `scripts/valgrind.sh`).
fn receive(socket: &UdpSocket, buffer: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
    let Some(sender) = SockRef::from(socket).peek_sender()?.as_socket() else {
        return Ok(None);
    };
    let read = socket.recv(buffer)?;
    Ok(Some((read, sender)))
}

fn run_udp(socket: UdpSocket, mode: Mode, started: Started) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    let socket = Arc::new(socket);
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let socket = Arc::clone(&socket);
        let stopping = Arc::clone(&stopping);
        started.serving(move || {
            stopping.store(true, Ordering::Release);
            // On Linux this wakes the blocked recv (which then returns 0 bytes) even though an
            // unconnected socket reports ENOTCONN.
            let _ = SockRef::from(&*socket).shutdown(Shutdown::Read);
        });
    }
    let mut buffer = vec![0; DATAGRAM_BUFFER_BYTES];
    loop {
        let received = receive(&socket, &mut buffer);
        if stopping.load(Ordering::Acquire) {
            return Ok(());
        }
        match received {
            Ok(Some((read, peer))) => {
                let data = &mut buffer[..read];
                mode.apply(data);
                let _ = socket.send_to(data, peer);
            }
            // Woken without a datagram, yet not stopping: nothing to answer, and no busy loop.
            Ok(None) => thread::sleep(ACCEPT_PAUSE),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // An error queued on the socket (an ICMP report for an earlier reply) is consumed by
            // the call that returns it; anything else must not become a busy loop.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => thread::sleep(ACCEPT_PAUSE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_gives_the_sender_or_none_after_shutdown() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(b"datagram", socket.local_addr().unwrap())
            .unwrap();
        let mut buffer = [0; 64];
        let (read, sender) = receive(&socket, &mut buffer).unwrap().unwrap();
        assert_eq!(&buffer[..read], b"datagram");
        assert_eq!(sender, client.local_addr().unwrap());

        let socket = Arc::new(socket);
        let waker = {
            let socket = Arc::clone(&socket);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                let _ = SockRef::from(&*socket).shutdown(Shutdown::Read);
            })
        };
        assert!(receive(&socket, &mut buffer).unwrap().is_none());
        waker.join().unwrap();
    }
}

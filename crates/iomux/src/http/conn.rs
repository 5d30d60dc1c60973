//! The per-connection state machine of `iomux http`: reads requests, answers them in order through
//! [`Site::respond`](super::Site::respond), writes the answers without ever blocking the loop, and
//! keeps the connection's timeouts. Layer 4, the HTTP server, on the callback event loop.
//!
//! # Memory
//! An idle keep-alive connection is the [`Connection`] struct alone (a few dozen bytes in the loop's
//! fd table) plus its timer: no buffers. A read goes into the worker's one read buffer and responses
//! are built in the worker's one output buffer; only what must outlive the event — the rest of a
//! request head, unread pipelined requests, output the peer has not taken yet, a file being sent —
//! moves into a [`Pending`] box taken from the worker's pool and given back when it empties. In the
//! steady state of a keep-alive client (a whole request per read, a whole response per write) a
//! request allocates nothing and touches no per-connection buffer.
//!
//! # One request
//! `read` → [`parse`] → `respond` → one `write` of head and body together. A small file in the
//! worker's cache costs `respond` one `statx` (it is copied after the head); otherwise `respond`
//! opens it (`openat2` + `fstat`) and one `pread` appends it to the head. A larger file goes out with `sendfile(2)` after
//! the head (sent with `MSG_MORE`), or with `pread`/`write` chunks under `--no-sendfile`. The timer is
//! re-set once (O(log n), no allocation). Write interest is asked for only while output waits for a
//! slow reader, and no request is read meanwhile, so a client that does not read cannot make the
//! server buffer without bound.
//!
//! # Timeouts
//! One timer per connection, re-set to whichever deadline applies:
//! - **keep-alive**: nothing pending; on expiry the connection closes silently;
//! - **header**: started when the first byte of a request head arrives (or is left over from a
//!   pipelined read), not restarted by later bytes; it also covers a body being discarded. On expiry
//!   a head still incomplete is answered 408 and the connection closes;
//! - **send**: output waits for the peer; restarted whenever the peer takes some, and on expiry (the
//!   keep-alive timeout without progress) the connection is dropped;
//! - **drain**: after a response that closes the connection the write side is shut down and what the
//!   client still sends is read and thrown away, for at most [`DRAIN_TIMEOUT`] and [`DRAIN_LIMIT`]
//!   bytes, so the kernel does not answer unread data with a reset that could destroy the response in
//!   flight.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::Duration;

use socket2::Socket;

use super::access_log::{self, Line};
use super::server::{Source, Worker};
use super::{Body, Error, MAX_HEAD, MAX_REQUEST_LINE, Parse, SMALL_FILE_LIMIT, parse, reject};
use crate::event_loop::{EventLoop, Interest, Ready, Timer};

/// Requests are answered from buffered input only while less than this much output waits to be
/// written, so many pipelined requests cannot grow the output without bound.
const OUTPUT_BUDGET: usize = 64 * 1024;

/// The most memory a reused buffer keeps between uses (a small file's response fits well within).
const KEEP_CAPACITY: usize = 256 * 1024;

/// How many reads one readiness event may do before the connection yields to the others (a read that
/// fills the buffer suggests more is waiting).
const READS_PER_EVENT: usize = 4;

/// How many `sendfile` (or `pread` + `write`) chunks one event may send before yielding.
const CHUNKS_PER_EVENT: usize = 16;

/// The chunk read from a file per `write` under `--no-sendfile`.
const COPY_CHUNK: usize = 64 * 1024;

/// The largest count passed to one `sendfile(2)`.
const SENDFILE_CHUNK: u64 = 1 << 30;

/// How long a closing connection waits for the client to close after its last response.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How many bytes a closing connection reads and throws away before it closes anyway.
pub(crate) const DRAIN_LIMIT: u32 = 1 << 20;

/// What the connection's timer is set for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// Nothing pending: close silently.
    KeepAlive,
    /// A request head (or the body after it) is arriving: 408 and close.
    Header,
    /// Output waits for the peer: drop the connection.
    Send,
    /// The write side is shut down: close.
    Drain,
}

/// What must outlive one event; boxed and pooled per worker so idle connections carry none of it.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Bytes read but not yet answered: the start of a head, or pipelined requests.
    input: Vec<u8>,
    /// `input` ends in an incomplete head that was parsed after its last byte arrived: parsing again
    /// before more bytes come would find the same.
    waiting: bool,
    /// Response bytes the peer has not taken yet; `output[written..]` is left to write.
    output: Vec<u8>,
    /// How much of `output` is written.
    written: usize,
    /// A file body to send after `output`.
    file: Option<FileSend>,
}

impl Pending {
    /// Empties the box for reuse, keeping its buffers' memory unless a buffer grew unusually large.
    pub(crate) fn clear(&mut self) {
        self.input.clear();
        self.output.clear();
        if self.output.capacity() > KEEP_CAPACITY {
            self.output.shrink_to(KEEP_CAPACITY);
        }
        if self.input.capacity() > KEEP_CAPACITY {
            self.input.shrink_to(KEEP_CAPACITY);
        }
        self.waiting = false;
        self.written = 0;
        self.file = None;
    }

    fn is_empty(&self) -> bool {
        self.input.is_empty() && self.written == self.output.len() && self.file.is_none()
    }

    fn has_output(&self) -> bool {
        self.written < self.output.len() || self.file.is_some()
    }
}

/// A file body being sent: `remaining` bytes from `offset`.
#[derive(Debug)]
struct FileSend {
    file: File,
    offset: u64,
    remaining: u64,
}

/// How far a write got.
struct Flushed {
    /// Everything pending was written.
    done: bool,
    /// Some bytes were written.
    moved: bool,
}

/// How a read went.
enum Received {
    /// Bytes arrived and were served; `more` if the read filled the buffer.
    Served { more: bool },
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed, or the connection failed.
    Closed,
}

/// One client connection: its socket, the state between events, and its timer. See the module docs.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The connected, non-blocking socket.
    socket: Socket,
    /// The worker this connection belongs to (buffers, pool, idle list, site).
    worker: Rc<Worker>,
    /// The connection's one timer; `None` between its firing and the next deadline.
    timer: Option<Timer>,
    /// What `timer` is for.
    deadline: Deadline,
    /// State kept between events; `None` when nothing is pending.
    pending: Option<Box<Pending>>,
    /// The client's address, for the access log.
    peer: IpAddr,
    /// Body bytes still to read and throw away before the next request (at most 64 KiB); while
    /// draining, the bytes still allowed before closing.
    discard: u32,
    /// The header deadline is running for the request now arriving.
    head_started: bool,
    /// The last response queued closes the connection: no request after it is read.
    close_after: bool,
    /// The write side is shut down; reading only to throw away.
    draining: bool,
    /// Registered for write readiness (output waits for the peer) instead of read readiness.
    writing: bool,
    /// In the worker's list of idle connections.
    idle_listed: bool,
}

impl Connection {
    /// A new connection, idle until [`started`](Connection::started) is called with its timer.
    pub(crate) fn new(socket: Socket, worker: Rc<Worker>, peer: IpAddr) -> Connection {
        Connection {
            socket,
            worker,
            timer: None,
            deadline: Deadline::KeepAlive,
            pending: None,
            peer,
            discard: 0,
            head_started: false,
            close_after: false,
            draining: false,
            writing: false,
            idle_listed: false,
        }
    }

    /// Completes the setup once registered: the keep-alive `timer` runs and the connection is idle
    /// (listed in the worker's idle list by the caller).
    pub(crate) fn started(&mut self, timer: Timer) {
        self.timer = Some(timer);
        self.deadline = Deadline::KeepAlive;
        self.idle_listed = true;
    }

    /// Unlists an idle connection the worker took off its idle list (to close it).
    pub(crate) fn unlisted(&mut self) {
        self.idle_listed = false;
    }

    /// The connection's pending timer, if any.
    pub(crate) fn timer(&self) -> Option<Timer> {
        self.timer
    }

    fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The socket is ready (for reading, or for writing while output waits).
    pub(crate) fn ready(&mut self, event_loop: &mut EventLoop<Source>, ready: Ready) {
        if ready.is_invalid() {
            self.close(event_loop);
            return;
        }
        if self.draining {
            self.drain(event_loop);
            return;
        }
        self.unlist_idle();
        let can_read = !self.has_output();
        self.advance(event_loop, can_read);
    }

    /// The connection's timer fired.
    pub(crate) fn timeout(&mut self, event_loop: &mut EventLoop<Source>, timer: Timer) {
        if self.timer != Some(timer) {
            return;
        }
        self.timer = None;
        match self.deadline {
            Deadline::KeepAlive | Deadline::Send | Deadline::Drain => self.close(event_loop),
            Deadline::Header => {
                let input = self
                    .pending
                    .as_mut()
                    .map(|pending| std::mem::take(&mut pending.input))
                    .unwrap_or_default();
                if input.is_empty() || self.has_output() {
                    // Only a body was still arriving: its request has been answered.
                    self.close(event_loop);
                    return;
                }
                let error = Error::HeaderTimeout {
                    timeout: self.worker.site.config().header_timeout,
                };
                let worker = Rc::clone(&self.worker);
                let response = reject(&error, &input, &mut worker.out.borrow_mut());
                access_log_record(event_loop, &worker, self.peer, Line::Raw(&input), &response);
                self.close_after = true;
                self.discard = 0;
                self.advance(event_loop, false);
            }
        }
    }

    /// Whether output (buffered bytes or a file) waits for the peer.
    fn has_output(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|pending| pending.has_output())
    }

    /// Writes, answers buffered requests and reads, in that order, until the connection must wait.
    fn advance(&mut self, event_loop: &mut EventLoop<Source>, mut can_read: bool) {
        let mut reads = 0;
        loop {
            let flushed = match self.flush() {
                Ok(flushed) => flushed,
                Err(error) => {
                    self.report(&error);
                    self.close(event_loop);
                    return;
                }
            };
            if !flushed.done {
                self.wait_writable(event_loop, flushed.moved);
                return;
            }
            if self.close_after {
                self.finish(event_loop);
                return;
            }
            if self.serve_buffered(event_loop) {
                continue;
            }
            if !can_read || reads == READS_PER_EVENT {
                break;
            }
            reads += 1;
            match self.read_and_serve(event_loop) {
                Received::Served { more } => can_read = more,
                Received::WouldBlock => break,
                Received::Closed => {
                    self.close(event_loop);
                    return;
                }
            }
        }
        self.wait_readable(event_loop);
    }

    /// Reads once into the worker's buffer and answers what arrived.
    fn read_and_serve(&mut self, event_loop: &mut EventLoop<Source>) -> Received {
        let worker = Rc::clone(&self.worker);
        let mut buffer = worker.read_buffer.borrow_mut();
        let read = loop {
            match (&self.socket).read(&mut buffer[..]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => break result,
            }
        };
        let length = match read {
            Ok(0) => return Received::Closed,
            Ok(length) => length,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(_) => return Received::Closed,
        };
        let more = length == buffer.len();
        let mut bytes = &buffer[..length];
        let skip = bytes.len().min(self.discard as usize);
        bytes = &bytes[skip..];
        self.discard -= skip as u32;
        if bytes.is_empty() {
            return Received::Served { more };
        }
        if let Some(pending) = self
            .pending
            .as_mut()
            .filter(|pending| !pending.input.is_empty())
        {
            // The start of a head is waiting: parse again only if the new bytes can change the outcome
            // (an end of line, or a length limit crossed), so a head trickling in byte by byte is not
            // re-parsed for every byte.
            let before = pending.input.len();
            pending.input.extend_from_slice(bytes);
            let after = pending.input.len();
            let crossed = |limit: usize| before <= limit && after > limit;
            if bytes.contains(&b'\n') || crossed(MAX_REQUEST_LINE) || crossed(MAX_HEAD) {
                pending.waiting = false;
            }
            return Received::Served { more };
        }
        let consumed = {
            let mut out = worker.out.borrow_mut();
            self.serve(event_loop, &worker, bytes, &mut out)
        };
        if consumed < bytes.len() {
            let waiting = !self.close_after && self.ends_partial();
            let pending = self.pending_mut();
            pending.input.extend_from_slice(&bytes[consumed..]);
            pending.waiting = waiting;
        }
        Received::Served { more }
    }

    /// Whether the leftover input stopped at an incomplete head (rather than at the output budget or a
    /// file body in flight).
    fn ends_partial(&self) -> bool {
        self.pending
            .as_ref()
            .is_none_or(|pending| pending.file.is_none())
            && self.worker.out.borrow().len() < OUTPUT_BUDGET
    }

    /// Answers requests left in the pending input; returns whether it consumed any input.
    fn serve_buffered(&mut self, event_loop: &mut EventLoop<Source>) -> bool {
        let Some(pending) = self.pending.as_mut() else {
            return false;
        };
        if pending.input.is_empty() || pending.waiting {
            return false;
        }
        let mut input = std::mem::take(&mut pending.input);
        let worker = Rc::clone(&self.worker);
        let consumed = self.serve(event_loop, &worker, &input, &mut worker.out.borrow_mut());
        input.drain(..consumed);
        let waiting = !input.is_empty() && !self.close_after && self.ends_partial();
        let pending = self.pending_mut();
        pending.input = input;
        pending.waiting = waiting;
        consumed > 0
    }

    /// Answers the complete requests at the start of `input` into `out`, in order, until the input
    /// ends in an incomplete head, a file body must be sent, the output budget is used up or a
    /// response closes the connection; returns how many bytes of `input` it consumed (body bytes to
    /// discard included).
    fn serve(
        &mut self,
        event_loop: &mut EventLoop<Source>,
        worker: &Worker,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> usize {
        let mut position = 0;
        loop {
            let skip = (input.len() - position).min(self.discard as usize);
            position += skip;
            self.discard -= skip as u32;
            if self.close_after {
                // Nothing after a closing response is read.
                return input.len();
            }
            if position == input.len()
                || out.len() >= OUTPUT_BUDGET
                || self
                    .pending
                    .as_ref()
                    .is_some_and(|pending| pending.file.is_some())
            {
                return position;
            }
            let rest = &input[position..];
            let mut request = match parse(rest) {
                Ok(Parse::Partial) => return position,
                Ok(Parse::Complete(request)) => request,
                Err(error) => {
                    let response = reject(&error, rest, out);
                    access_log_record(event_loop, worker, self.peer, Line::Raw(rest), &response);
                    self.close_after = true;
                    return input.len();
                }
            };
            self.head_started = false;
            if worker.is_shutting_down() {
                request.disable_keep_alive();
            }
            let start = out.len();
            let response = worker.site.respond(&request, out);
            position += request.head_len();
            self.discard = u32::try_from(request.body_len())
                .expect("parse refuses bodies over MAX_DISCARDED_BODY, which fits in u32");
            self.close_after = !response.keep_alive;
            access_log_record(
                event_loop,
                worker,
                self.peer,
                Line::Parsed(&request),
                &response,
            );
            match response.body {
                Body::Buffered => {}
                Body::File(body) if body.len <= SMALL_FILE_LIMIT => {
                    if let Err(error) = body.read_into(out) {
                        // The head promised a length the file no longer has: send nothing of this
                        // response and close after the ones before it.
                        out.truncate(start);
                        self.report(&error);
                        self.close_after = true;
                    }
                }
                Body::File(body) => {
                    self.pending_mut().file = Some(FileSend {
                        file: body.file,
                        offset: body.offset,
                        remaining: body.len,
                    });
                }
            }
        }
    }

    /// Writes what waits: the fresh responses in the worker's buffer, then older output and a file
    /// body kept in [`Pending`].
    fn flush(&mut self) -> io::Result<Flushed> {
        let mut moved = false;
        let worker = Rc::clone(&self.worker);
        {
            let mut out = worker.out.borrow_mut();
            if !out.is_empty() {
                let file_follows = self
                    .pending
                    .as_ref()
                    .is_some_and(|pending| pending.file.is_some());
                let written = match write_nonblocking(&self.socket, &out, file_follows) {
                    Ok(written) => written,
                    Err(error) => {
                        // The buffer is the worker's: left filled, these responses would go out
                        // to the next connection it serves (regression test
                        // `responses_to_a_reset_peer_never_reach_the_next_connection`).
                        out.clear();
                        return Err(error);
                    }
                };
                moved |= written > 0;
                if written < out.len() {
                    let pending = self.pending_mut();
                    debug_assert!(pending.written == pending.output.len());
                    pending.output.clear();
                    std::mem::swap(&mut pending.output, &mut *out);
                    pending.written = written;
                    out.clear();
                    return Ok(Flushed { done: false, moved });
                }
                out.clear();
                // A large listing must not pin its memory for the worker's lifetime.
                if out.capacity() > KEEP_CAPACITY {
                    out.shrink_to(KEEP_CAPACITY);
                }
            }
        }
        let sendfile = worker.site.config().sendfile;
        let Some(pending) = self.pending.as_mut() else {
            return Ok(Flushed { done: true, moved });
        };
        for _ in 0..CHUNKS_PER_EVENT {
            if pending.written < pending.output.len() {
                // Not for the last chunk under --no-sendfile: MSG_MORE would hold its final
                // partial segment back (about 200 ms) waiting for bytes that never come.
                let file_follows = pending.file.as_ref().is_some_and(|file| file.remaining > 0);
                let written = write_nonblocking(
                    &self.socket,
                    &pending.output[pending.written..],
                    file_follows,
                )?;
                moved |= written > 0;
                pending.written += written;
                if pending.written < pending.output.len() {
                    return Ok(Flushed { done: false, moved });
                }
                pending.output.clear();
                pending.written = 0;
            }
            let Some(file) = pending.file.as_mut() else {
                return Ok(Flushed { done: true, moved });
            };
            if file.remaining == 0 {
                pending.file = None;
                return Ok(Flushed { done: true, moved });
            }
            if sendfile {
                let count = file.remaining.min(SENDFILE_CHUNK) as usize;
                let sent = match self.socket.sendfile(
                    &file.file,
                    usize::try_from(file.offset).map_err(|_| io::ErrorKind::InvalidInput)?,
                    NonZeroUsize::new(count),
                ) {
                    Ok(0) => return Err(file_shrank()),
                    Ok(sent) => sent,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Flushed { done: false, moved });
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => 0,
                    Err(error) => return Err(error),
                };
                moved |= sent > 0;
                file.offset += sent as u64;
                file.remaining -= sent as u64;
            } else {
                // Read the next chunk into the output buffer; the loop's next turn writes it.
                let chunk = file.remaining.min(COPY_CHUNK as u64) as usize;
                pending.output.resize(chunk, 0);
                let read = match file.file.read_at(&mut pending.output, file.offset) {
                    Ok(0) => return Err(file_shrank()),
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => 0,
                    Err(error) => return Err(error),
                };
                pending.output.truncate(read);
                pending.written = 0;
                file.offset += read as u64;
                file.remaining -= read as u64;
            }
        }
        // Still writable, most likely: the loop reports it again at once, after the others.
        Ok(Flushed { done: false, moved })
    }

    /// Output waits for the peer: ask for write readiness and keep the send deadline.
    fn wait_writable(&mut self, event_loop: &mut EventLoop<Source>, moved: bool) {
        if !self.writing {
            if event_loop.modify(self.fd(), Interest::WRITE).is_err() {
                self.close(event_loop);
                return;
            }
            self.writing = true;
        }
        if moved || self.deadline != Deadline::Send {
            let timeout = self.worker.site.config().keepalive_timeout;
            self.set_deadline(event_loop, Deadline::Send, timeout);
        }
    }

    /// Nothing to write: wait for the rest of a request, or idle until the next one.
    fn wait_readable(&mut self, event_loop: &mut EventLoop<Source>) {
        if self.writing {
            if event_loop.modify(self.fd(), Interest::READ).is_err() {
                self.close(event_loop);
                return;
            }
            self.writing = false;
        }
        let request_pending = self.discard > 0
            || self
                .pending
                .as_ref()
                .is_some_and(|pending| !pending.input.is_empty());
        if request_pending {
            if !self.head_started {
                self.head_started = true;
                let timeout = self.worker.site.config().header_timeout;
                self.set_deadline(event_loop, Deadline::Header, timeout);
            }
            return;
        }
        if self.worker.is_shutting_down() {
            self.close(event_loop);
            return;
        }
        self.head_started = false;
        self.release_pending();
        let timeout = self.worker.site.config().keepalive_timeout;
        self.set_deadline(event_loop, Deadline::KeepAlive, timeout);
        self.worker.idle.borrow_mut().push_back(self.fd());
        self.idle_listed = true;
    }

    /// The last response is written and closes the connection: shut down the write side and drain.
    fn finish(&mut self, event_loop: &mut EventLoop<Source>) {
        // Whatever requests came after the closing response are never answered.
        if let Some(mut pending) = self.pending.take() {
            pending.clear();
            self.worker.give_back(pending);
        }
        if self.socket.shutdown(Shutdown::Write).is_err() {
            self.close(event_loop);
            return;
        }
        self.draining = true;
        self.discard = DRAIN_LIMIT;
        if self.writing {
            if event_loop.modify(self.fd(), Interest::READ).is_err() {
                self.close(event_loop);
                return;
            }
            self.writing = false;
        }
        self.set_deadline(event_loop, Deadline::Drain, DRAIN_TIMEOUT);
        self.drain(event_loop);
    }

    /// Reads and throws away what the client still sends; closes at its end, on an error, or once
    /// the drain budget is spent.
    fn drain(&mut self, event_loop: &mut EventLoop<Source>) {
        let worker = Rc::clone(&self.worker);
        let mut buffer = worker.read_buffer.borrow_mut();
        for _ in 0..READS_PER_EVENT {
            match (&self.socket).read(&mut buffer[..]) {
                Ok(0) => break,
                Ok(read) => {
                    let read = u32::try_from(read).unwrap_or(u32::MAX);
                    if read >= self.discard {
                        break;
                    }
                    self.discard -= read;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        drop(buffer);
        self.close(event_loop);
    }

    /// Sets the timer to `deadline` after `delay`, re-using the pending timer when there is one.
    fn set_deadline(
        &mut self,
        event_loop: &mut EventLoop<Source>,
        deadline: Deadline,
        delay: Duration,
    ) {
        self.deadline = deadline;
        if let Some(timer) = self.timer
            && event_loop.reset(timer, delay)
        {
            return;
        }
        self.timer = event_loop.timeout_after(self.fd(), delay).ok();
    }

    /// The pending state, taken from the worker's pool if the connection has none.
    fn pending_mut(&mut self) -> &mut Pending {
        let worker = &self.worker;
        self.pending.get_or_insert_with(|| worker.take_pending())
    }

    /// Gives the pending state back to the pool if nothing is left in it.
    fn release_pending(&mut self) {
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.is_empty())
            && let Some(pending) = self.pending.take()
        {
            self.worker.give_back(pending);
        }
    }

    fn unlist_idle(&mut self) {
        if self.idle_listed {
            self.worker.idle.borrow_mut().remove(self.fd());
            self.idle_listed = false;
        }
    }

    /// Closes the connection from its own handler: the loop drops it when the handler returns.
    fn close(&mut self, event_loop: &mut EventLoop<Source>) {
        self.release(event_loop);
        let _ = event_loop.unregister(self.fd());
    }

    /// Undoes the connection's bookkeeping before it is dropped: its timer, its place in the idle
    /// list, its pending state and its count. Called exactly once, by [`close`](Connection::close) or
    /// by the worker when it closes an idle connection.
    pub(crate) fn release(&mut self, event_loop: &mut EventLoop<Source>) {
        if let Some(timer) = self.timer.take() {
            event_loop.cancel(timer);
        }
        self.unlist_idle();
        if let Some(mut pending) = self.pending.take() {
            pending.clear();
            self.worker.give_back(pending);
        }
        self.worker.connection_closed(event_loop);
    }

    /// Reports on stderr why the connection is closed early, unless the client just went away.
    fn report(&self, error: &io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::TimedOut
        ) {
            return;
        }
        eprintln!(
            "iomux http: closing the connection from {}: {error}",
            self.peer
        );
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Records `response` in the access log unless the site runs quietly.
fn access_log_record(
    event_loop: &mut EventLoop<Source>,
    worker: &Worker,
    peer: IpAddr,
    line: Line<'_>,
    response: &super::Response,
) {
    if !worker.site.config().quiet {
        access_log::record(
            event_loop,
            peer,
            line,
            response.status.code(),
            response.body_len,
        );
    }
}

/// Writes as much of `bytes` as the socket takes now; `more` says a file body follows (`MSG_MORE`,
/// so the head and the first body bytes can share a segment).
fn write_nonblocking(socket: &Socket, bytes: &[u8], more: bool) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        let result = if more {
            socket.send_with_flags(&bytes[written..], libc::MSG_MORE)
        } else {
            (&*socket).write(&bytes[written..])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => written += count,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(written)
}

fn file_shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent; the connection is closed rather than the response padded",
    )
}

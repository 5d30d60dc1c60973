//! The `iomux http` server: listeners, the accept loop, worker threads and graceful shutdown, on the
//! callback event loop. Layer 4, the HTTP server.
//!
//! # Workers
//! Thread-per-core: each worker is one thread running its own [`EventLoop`] over its own listening
//! socket, all bound to the same address with `SO_REUSEPORT` so the kernel spreads new connections
//! between them (with port 0 the first listener binds and the others bind the port it got). A worker
//! shares nothing with the others but the [`Site`], the connection count and the shutdown flag; its
//! loop's handler is the enum [`Source`] (listener or connection), so every event is a direct call.
//!
//! # Accepting
//! The listener is registered oneshot and re-armed after each batch of accepts, so that pausing is
//! simply not re-arming it: no event, no spinning. Accepting pauses
//! - at `max_connections` (counted over all workers), once no idle connection is left to close: the
//!   least recently active idle connection of the worker is closed to make room while there is one;
//! - when the process runs out of file descriptors (`EMFILE`, `ENFILE`) or kernel memory: the
//!   pending connections stay in the kernel's queue and the worker retries after
//!   [`ACCEPT_RETRY`], reporting the condition once on stderr.
//!
//! # Shutdown
//! On `SIGINT` or `SIGTERM` (with [`Options::signals`]), or [`ShutdownHandle::shutdown`], every worker
//! closes its listener, closes its idle connections at the end of the round (a request already
//! reported in that round is still answered), answers requests already arriving with
//! `Connection: close`, and stops once its last connection has closed or the shutdown timeout has
//! passed; [`Running::wait`] then returns `Ok`. A second signal stops at once. Connections still in
//! the kernel's accept queue when the listener closes are reset by the kernel.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::conn::{Connection, Pending};
use super::{Config, Error, Site, access_log};
use crate::event_loop::{
    self, BackendKind, EventLoop, Handle, Handler, Interest, Ready, TimeoutHandler, Timer, Trigger,
};

/// How long a worker waits before accepting again after running out of file descriptors or
/// connections.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The most connections one listener event accepts before the loop serves the others.
const ACCEPT_BATCH: usize = 64;

/// The listen backlog asked for (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 4096;

/// The size of each worker's read buffer: a request head (at most 8 KiB) and more fit.
const READ_BUFFER: usize = 16 * 1024;

/// The most [`Pending`] boxes a worker keeps for reuse.
const POOL_LIMIT: usize = 64;

/// How many file descriptors the default connection limit leaves for listeners, loops and files.
const RESERVED_FDS: u64 = 64;

/// Where and how to run a [`Server`]; the site's own options are in [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The address to listen on; port 0 picks a free port.
    pub address: SocketAddr,
    /// The selector backend of every worker's loop.
    pub backend: BackendKind,
    /// The number of worker threads; 0 means one per core.
    pub workers: usize,
    /// Shut down gracefully on `SIGINT` and `SIGTERM` (a second one stops at once). Off by default:
    /// signal handling belongs to the program, not to a library call.
    pub signals: bool,
}

impl Options {
    /// Listen on `address` with the best backend, one worker, no signal handling.
    pub fn new(address: SocketAddr) -> Options {
        Options {
            address,
            backend: BackendKind::best(),
            workers: 1,
            signals: false,
        }
    }
}

/// A bound but not yet running server: its listeners are open (connections queue in the kernel),
/// its document root is open.
///
/// ```
/// use iomux::http::{Config, Options, Server};
///
/// let root = tempfile::tempdir()?;
/// std::fs::write(root.path().join("hello.txt"), "hello")?;
/// let server = Server::bind(Config::new(root.path()), Options::new("127.0.0.1:0".parse()?))?;
/// let address = server.local_addr();
/// let running = server.start()?;
///
/// use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(address)?;
/// client.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut response = String::new();
/// client.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.ends_with("\r\n\r\nhello"));
///
/// running.shutdown_handle().shutdown();
/// running.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    site: Arc<Site>,
    /// One listening socket per worker.
    listeners: Vec<Socket>,
    /// The address the listeners are bound to (port resolved).
    address: SocketAddr,
    backend: BackendKind,
    signals: bool,
    max_connections: usize,
}

impl Server {
    /// Opens the document root and binds one listener per worker to `options.address`.
    ///
    /// # Errors
    /// [`Error::Root`] if the root cannot be opened; [`Error::Bind`] if the address cannot be
    /// listened on (in use, not local, no permission); [`Error::EventLoop`] if the backend is not
    /// available on this platform.
    pub fn bind(config: Config, options: Options) -> Result<Server, Error> {
        if !options.backend.is_available() {
            let source = crate::selector::Error::BackendUnavailable {
                backend: options.backend,
            };
            return Err(Error::EventLoop {
                worker: 0,
                source: source.into(),
            });
        }
        let workers = match options.workers {
            0 => thread::available_parallelism().map_or(1, usize::from),
            workers => workers,
        };
        let max_connections = config
            .max_connections
            .unwrap_or_else(default_max_connections)
            .max(1);
        let site = Arc::new(Site::new(config)?);
        let reuse_port = workers > 1;
        let mut address = options.address;
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            let listener =
                listen(address, reuse_port).map_err(|source| Error::Bind { address, source })?;
            if listeners.is_empty() {
                address = listener
                    .local_addr()
                    .ok()
                    .and_then(|local| local.as_socket())
                    .ok_or_else(|| Error::Bind {
                        address,
                        source: io::Error::other("the listener has no IP address"),
                    })?;
            }
            listeners.push(listener);
        }
        Ok(Server {
            site,
            listeners,
            address,
            backend: options.backend,
            signals: options.signals,
            max_connections,
        })
    }

    /// The address the server listens on, with the port the kernel picked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The selector backend of the workers' loops.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.listeners.len()
    }

    /// The most connections open at once, over all workers.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Starts the workers and returns once every worker's loop is ready (and, with
    /// [`Options::signals`], listening for signals); no worker serves before every one is ready.
    ///
    /// # Errors
    /// [`Error::EventLoop`] if a worker's loop cannot be built or its listener registered (the other
    /// workers are stopped first); [`Error::Worker`] if a thread cannot be spawned.
    pub fn start(self) -> Result<Running, Error> {
        let shared = Arc::new(Shared {
            connections: AtomicUsize::new(0),
            max_connections: self.max_connections,
            shutdown: AtomicBool::new(false),
            loops: Mutex::new(Vec::new()),
        });
        let (ready_sender, ready) = mpsc::channel();
        let mut threads = Vec::with_capacity(self.listeners.len());
        let mut go_senders = Vec::with_capacity(self.listeners.len());
        let mut failure = None;
        for (index, listener) in self.listeners.into_iter().enumerate() {
            let setup = WorkerSetup {
                index,
                listener,
                site: Arc::clone(&self.site),
                shared: Arc::clone(&shared),
                backend: self.backend,
                signals: self.signals,
            };
            let ready_sender = ready_sender.clone();
            let (go_sender, go) = mpsc::channel();
            go_senders.push(go_sender);
            let spawned = thread::Builder::new()
                .name(format!("iomux-http-{index}"))
                .spawn(move || run_worker(setup, ready_sender, go));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    failure = Some(Error::Worker {
                        worker: index,
                        what: format!("could not be started: {error}"),
                    });
                    break;
                }
            }
        }
        drop(ready_sender);
        for _ in 0..threads.len() {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    failure.get_or_insert(error);
                }
                // A worker panicked during setup; its join below reports it.
                Err(_) => break,
            }
        }
        // Every loop is ready (or one failed): only now does any worker run, so none serves (or
        // logs) before `start` returns.
        for go_sender in go_senders {
            let _ = go_sender.send(failure.is_none());
        }
        let running = Running {
            threads,
            handle: ShutdownHandle { shared },
            address: self.address,
        };
        match failure {
            None => Ok(running),
            Some(error) => {
                let _ = running.wait();
                Err(error)
            }
        }
    }

    /// Starts the workers and waits until they have shut down ([`start`](Server::start) then
    /// [`wait`](Running::wait)).
    ///
    /// # Errors
    /// As [`start`](Server::start) and [`wait`](Running::wait).
    pub fn run(self) -> Result<(), Error> {
        self.start()?.wait()
    }
}

/// The connection limit when none is configured: `RLIMIT_NOFILE` − 64, or half the limit when that
/// leaves fewer than half.
fn default_max_connections() -> usize {
    let limit = crate::nofile_limit().map_or(1024, |(soft, _)| soft);
    let connections = if limit > 2 * RESERVED_FDS {
        limit - RESERVED_FDS
    } else {
        limit / 2
    };
    usize::try_from(connections).unwrap_or(usize::MAX)
}

/// A listening, non-blocking socket on `address`.
fn listen(address: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

/// A started server: its workers run until a shutdown.
#[derive(Debug)]
pub struct Running {
    threads: Vec<JoinHandle<Result<(), Error>>>,
    handle: ShutdownHandle,
    address: SocketAddr,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// A handle to shut the server down from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Waits until every worker has stopped.
    ///
    /// # Errors
    /// The first worker's error: [`Error::EventLoop`] if its loop failed, [`Error::Worker`] if it
    /// panicked.
    pub fn wait(self) -> Result<(), Error> {
        let mut result = Ok(());
        for (index, thread) in self.threads.into_iter().enumerate() {
            let outcome = thread.join().unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Err(Error::Worker {
                    worker: index,
                    what: format!("panicked: {what}"),
                })
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// Shuts a [`Running`] server down gracefully, from any thread; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight responses
    /// finish until the shutdown timeout. Returns at once; [`Running::wait`] waits for the end.
    /// Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.each_loop(begin_shutdown);
    }

    /// The number of connections open over all workers right now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("connections", &self.connections())
            .field("shutdown", &self.shared.shutdown.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the workers of one server share.
struct Shared {
    /// Connections open (or being accepted) over all workers.
    connections: AtomicUsize,
    /// The most connections open at once.
    max_connections: usize,
    /// A shutdown was asked for; a worker starting afterwards shuts down at once.
    shutdown: AtomicBool,
    /// Each running worker's loop handle.
    loops: Mutex<Vec<Handle<Source>>>,
}

impl Shared {
    /// Queues `callback` on every worker's loop.
    fn each_loop(&self, callback: fn(&mut EventLoop<Source>)) {
        let loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        for handle in loops.iter() {
            // A loop that is gone has stopped already.
            let _ = handle.call_soon(callback);
        }
    }

    /// Takes a place for one more connection; `false` at the limit.
    fn reserve(&self) -> bool {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .is_ok()
    }

    fn unreserve(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The handler of every source of a worker's loop: static dispatch, one `match` per event.
#[derive(Debug)]
pub(crate) enum Source {
    /// The worker's listening socket.
    Listener(Listener),
    /// A client connection.
    Connection(Connection),
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Listener(listener) => listener.socket.as_fd(),
            Source::Connection(connection) => connection.as_fd(),
        }
    }
}

impl Handler for Source {
    #[inline]
    fn ready(&mut self, event_loop: &mut EventLoop<Source>, ready: Ready) {
        match self {
            Source::Listener(listener) => listener.ready(event_loop),
            Source::Connection(connection) => connection.ready(event_loop, ready),
        }
    }
}

impl TimeoutHandler for Source {
    fn timeout(&mut self, event_loop: &mut EventLoop<Source>, timer: Timer) {
        match self {
            Source::Listener(listener) => listener.timeout(event_loop, timer),
            Source::Connection(connection) => connection.timeout(event_loop, timer),
        }
    }
}

/// One worker's state, shared by its listener and connections (one thread, hence `Rc` and cells).
pub(crate) struct Worker {
    /// The site every response comes from.
    pub(crate) site: Arc<Site>,
    shared: Arc<Shared>,
    /// The one buffer every connection of the worker reads into.
    pub(crate) read_buffer: RefCell<Box<[u8]>>,
    /// The one buffer responses are built in; empty between events.
    pub(crate) out: RefCell<Vec<u8>>,
    /// Pending boxes for reuse: kept boxed, since a connection holds its pending state boxed (to stay
    /// small while idle) and taking one from the pool must not allocate.
    #[allow(clippy::vec_box)]
    pool: RefCell<Vec<Box<Pending>>>,
    /// Idle connections, least recently active first.
    pub(crate) idle: RefCell<IdleList>,
    /// Connections of this worker.
    connections: Cell<usize>,
    /// A shutdown has begun.
    shutting_down: Cell<bool>,
    /// The listener's fd while it is registered.
    listener: Cell<Option<RawFd>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("connections", &self.connections.get())
            .field("shutting_down", &self.shutting_down.get())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// A cleared pending box from the pool, or a new one.
    pub(crate) fn take_pending(&self) -> Box<Pending> {
        self.pool.borrow_mut().pop().unwrap_or_default()
    }

    /// Returns an emptied pending box to the pool.
    pub(crate) fn give_back(&self, mut pending: Box<Pending>) {
        pending.clear();
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_LIMIT {
            pool.push(pending);
        }
    }

    /// Counts a connection gone; during a shutdown, the last one stops the loop.
    pub(crate) fn connection_closed(&self, event_loop: &mut EventLoop<Source>) {
        self.connections.set(self.connections.get() - 1);
        self.shared.unreserve();
        if self.shutting_down.get() && self.connections.get() == 0 {
            event_loop.stop();
        }
    }

    /// Closes the least recently active idle connection; `false` if none is idle.
    fn close_idle(&self, event_loop: &mut EventLoop<Source>) -> bool {
        let Some(fd) = self.idle.borrow_mut().pop_front() else {
            return false;
        };
        if let Ok(Some(Source::Connection(mut connection))) = event_loop.unregister(fd) {
            connection.unlisted();
            connection.release(event_loop);
        }
        true
    }
}

/// The idle connections of a worker in the order they became idle, as a doubly linked list threaded
/// through a table indexed by fd: push, remove and pop are O(1) and allocate only when the table
/// grows to a higher fd.
#[derive(Debug)]
pub(crate) struct IdleList {
    /// `links[fd]`: the neighbours of a listed fd; meaningless for fds not listed.
    links: Vec<Link>,
    /// The least recently active, or [`NONE`].
    head: RawFd,
    /// The most recently active, or [`NONE`].
    tail: RawFd,
}

/// No fd.
const NONE: RawFd = -1;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: RawFd,
    next: RawFd,
}

impl IdleList {
    fn new() -> IdleList {
        IdleList {
            links: Vec::new(),
            head: NONE,
            tail: NONE,
        }
    }

    fn index(fd: RawFd) -> usize {
        usize::try_from(fd).expect("a registered fd is never negative")
    }

    /// Lists `fd` (not listed) as the most recently active.
    pub(crate) fn push_back(&mut self, fd: RawFd) {
        let index = Self::index(fd);
        if self.links.len() <= index {
            self.links.resize(
                index + 1,
                Link {
                    prev: NONE,
                    next: NONE,
                },
            );
        }
        self.links[index] = Link {
            prev: self.tail,
            next: NONE,
        };
        match self.tail {
            NONE => self.head = fd,
            tail => self.links[Self::index(tail)].next = fd,
        }
        self.tail = fd;
    }

    /// Unlists `fd`, which is listed.
    pub(crate) fn remove(&mut self, fd: RawFd) {
        let Link { prev, next } = self.links[Self::index(fd)];
        match prev {
            NONE => self.head = next,
            prev => self.links[Self::index(prev)].next = next,
        }
        match next {
            NONE => self.tail = prev,
            next => self.links[Self::index(next)].prev = prev,
        }
    }

    /// The listed fds, least recently active first.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        let mut fd = self.head;
        while fd != NONE {
            fds.push(fd);
            fd = self.links[Self::index(fd)].next;
        }
        fds
    }

    /// Unlists and returns the least recently active fd.
    pub(crate) fn pop_front(&mut self) -> Option<RawFd> {
        match self.head {
            NONE => None,
            fd => {
                self.remove(fd);
                Some(fd)
            }
        }
    }
}

/// A worker's listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    socket: Socket,
    worker: Rc<Worker>,
    /// The retry timer while accepting is paused.
    paused: Option<Timer>,
    /// Accepting failed for lack of descriptors or memory, reported once until an accept succeeds.
    exhausted: bool,
}

impl Listener {
    fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    fn ready(&mut self, event_loop: &mut EventLoop<Source>) {
        if self.worker.is_shutting_down() {
            return;
        }
        // The readiness event says a connection is waiting; after an accept, only the next event can
        // say so again. A connection is closed to make room only for one known to be waiting.
        let mut waiting = true;
        for _ in 0..ACCEPT_BATCH {
            if !self.worker.shared.reserve() {
                if !waiting {
                    break;
                }
                if self.worker.close_idle(event_loop) {
                    continue;
                }
                self.pause(event_loop);
                return;
            }
            match self
                .socket
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            {
                Ok((socket, address)) => {
                    waiting = false;
                    self.exhausted = false;
                    let peer = address
                        .as_socket()
                        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
                    self.add_connection(event_loop, socket, peer);
                }
                Err(error) => {
                    self.worker.shared.unreserve();
                    match error.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                        _ if matches!(error.raw_os_error(), Some(libc::EPROTO | libc::EPERM)) => {}
                        _ => {
                            if !self.exhausted {
                                self.exhausted = true;
                                eprintln!(
                                    "iomux http: accepting connections failed: {error}; pausing, retrying every {} ms",
                                    ACCEPT_RETRY.as_millis()
                                );
                            }
                            self.pause(event_loop);
                            return;
                        }
                    }
                }
            }
        }
        self.rearm(event_loop);
    }

    /// Registers a new connection, idle with its keep-alive timer.
    fn add_connection(&mut self, event_loop: &mut EventLoop<Source>, socket: Socket, peer: IpAddr) {
        // Responses are written whole; Nagle would only delay their last segment.
        let _ = socket.set_tcp_nodelay(true);
        let connection = Connection::new(socket, Rc::clone(&self.worker), peer);
        let fd = match event_loop.register_handler(Source::Connection(connection), Interest::READ) {
            Ok(fd) => fd,
            Err(error) => {
                // e.g. select's fd ceiling: the connection is dropped (closed) with the handler.
                self.worker.shared.unreserve();
                eprintln!(
                    "iomux http: closing the connection from {peer}: {}",
                    error_chain(&error)
                );
                return;
            }
        };
        self.worker
            .connections
            .set(self.worker.connections.get() + 1);
        let keepalive = self.worker.site.config().keepalive_timeout;
        let timer = event_loop
            .timeout_after(fd, keepalive)
            .expect("the connection was registered just above");
        if let Some(Source::Connection(connection)) = event_loop.handler_mut(fd) {
            connection.started(timer);
        }
        self.worker.idle.borrow_mut().push_back(fd);
    }

    /// Stops accepting until [`ACCEPT_RETRY`] has passed (the oneshot registration stays disarmed).
    fn pause(&mut self, event_loop: &mut EventLoop<Source>) {
        if self.paused.is_none() {
            self.paused = event_loop.timeout_after(self.fd(), ACCEPT_RETRY).ok();
        }
    }

    fn timeout(&mut self, event_loop: &mut EventLoop<Source>, timer: Timer) {
        if self.paused == Some(timer) {
            self.paused = None;
            self.rearm(event_loop);
        }
    }

    fn rearm(&mut self, event_loop: &mut EventLoop<Source>) {
        if let Err(error) = event_loop.modify(self.fd(), Interest::READ) {
            eprintln!(
                "iomux http: cannot watch the listener again: {}; retrying",
                error_chain(&error)
            );
            self.pause(event_loop);
        }
    }
}

/// `error` and its sources, joined by `: ` (the way the command prints errors).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a worker thread starts with.
struct WorkerSetup {
    index: usize,
    listener: Socket,
    site: Arc<Site>,
    shared: Arc<Shared>,
    backend: BackendKind,
    signals: bool,
}

/// A worker thread: builds its loop, reports readiness, runs until shut down.
fn run_worker(
    setup: WorkerSetup,
    ready: mpsc::Sender<Result<(), Error>>,
    go: mpsc::Receiver<bool>,
) -> Result<(), Error> {
    let index = setup.index;
    let loop_error = |source: event_loop::Error| Error::EventLoop {
        worker: index,
        source,
    };
    // If this worker fails or panics, the others stop too, so `Running::wait` cannot hang on them.
    let mut stop_all = StopAllOnFailure {
        shared: Arc::clone(&setup.shared),
        succeeded: false,
    };
    let mut event_loop = match prepare(setup) {
        Ok(event_loop) => {
            let _ = ready.send(Ok(()));
            event_loop
        }
        Err(source) => {
            WORKER.set(None);
            let _ = ready.send(Err(loop_error(source)));
            return Ok(());
        }
    };
    drop(ready);
    if go.recv() != Ok(true) {
        // Another worker failed to start: this one never serves.
        drop(event_loop);
        WORKER.set(None);
        stop_all.succeeded = true;
        return Ok(());
    }
    let result = event_loop.run();
    access_log::flush();
    // The loop's sources hold the worker too; dropping both ends the thread's state.
    drop(event_loop);
    WORKER.set(None);
    stop_all.succeeded = result.is_ok();
    result.map(drop).map_err(loop_error)
}

/// Stops every worker's loop when dropped, unless its worker ended well.
struct StopAllOnFailure {
    shared: Arc<Shared>,
    succeeded: bool,
}

impl Drop for StopAllOnFailure {
    fn drop(&mut self) {
        if !self.succeeded || thread::panicking() {
            self.shared.shutdown.store(true, Ordering::SeqCst);
            self.shared.each_loop(EventLoop::stop);
        }
    }
}

/// Builds a worker's loop with its listener (and signal callbacks) registered.
fn prepare(setup: WorkerSetup) -> Result<EventLoop<Source>, event_loop::Error> {
    let mut event_loop = event_loop::Builder::new()
        .backend(setup.backend)
        .build::<Source>()?;
    let worker = Rc::new(Worker {
        site: setup.site,
        shared: Arc::clone(&setup.shared),
        read_buffer: RefCell::new(vec![0; READ_BUFFER].into_boxed_slice()),
        out: RefCell::new(Vec::new()),
        pool: RefCell::new(Vec::new()),
        idle: RefCell::new(IdleList::new()),
        connections: Cell::new(0),
        shutting_down: Cell::new(false),
        listener: Cell::new(None),
    });
    let listener = Listener {
        socket: setup.listener,
        worker: Rc::clone(&worker),
        paused: None,
        exhausted: false,
    };
    let fd = event_loop.register_handler_with(
        Source::Listener(listener),
        Interest::READ,
        Trigger::Oneshot,
    )?;
    worker.listener.set(Some(fd));
    WORKER.set(Some(Rc::clone(&worker)));
    if setup.signals {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            event_loop.on_signal(signal, |event_loop, _| {
                let stopping = current_worker().is_none_or(|worker| worker.is_shutting_down());
                if stopping {
                    // A second signal: stop now.
                    event_loop.stop();
                } else {
                    begin_shutdown(event_loop);
                }
            })?;
        }
    }
    setup
        .shared
        .loops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(event_loop.handle());
    if setup.shared.shutdown.load(Ordering::SeqCst) {
        begin_shutdown(&mut event_loop);
    }
    Ok(event_loop)
}

/// This thread's worker, if it runs one.
fn current_worker() -> Option<Rc<Worker>> {
    WORKER.with_borrow(|worker| worker.as_ref().map(Rc::clone))
}

thread_local! {
    /// The worker this thread runs, for the callbacks that reach its loop without a source: signals
    /// and [`ShutdownHandle`]s (whose callbacks must be `Send`, so they cannot carry the `Rc`).
    static WORKER: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

/// Starts a graceful shutdown of the worker running `event_loop` (see the module docs).
fn begin_shutdown(event_loop: &mut EventLoop<Source>) {
    let Some(worker) = current_worker() else {
        event_loop.stop();
        return;
    };
    if worker.shutting_down.replace(true) {
        return;
    }
    if let Some(fd) = worker.listener.take()
        && let Ok(Some(Source::Listener(listener))) = event_loop.unregister(fd)
        && let Some(timer) = listener.paused
    {
        event_loop.cancel(timer);
    }
    // Idle connections close in this round's timer step (their keep-alive deadline moves to now), so
    // a request that already arrived on one, and is reported in this round, is still answered.
    let idle = worker.idle.borrow().fds();
    for fd in idle {
        let timer = match event_loop.handler_mut(fd) {
            Some(Source::Connection(connection)) => connection.timer(),
            _ => None,
        };
        if let Some(timer) = timer {
            event_loop.reset(timer, Duration::ZERO);
        }
    }
    if worker.connections.get() == 0 {
        event_loop.stop();
    } else {
        let timeout = worker.site.config().shutdown_timeout;
        event_loop.call_later(timeout, EventLoop::stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(list: &mut IdleList) -> Vec<RawFd> {
        std::iter::from_fn(|| list.pop_front()).collect()
    }

    #[test]
    fn the_idle_list_pops_least_recently_listed_first() {
        let mut list = IdleList::new();
        assert_eq!(list.pop_front(), None);
        for fd in [7, 3, 12, 5] {
            list.push_back(fd);
        }
        // 3 becomes active and idle again: now the most recent.
        list.remove(3);
        list.push_back(3);
        assert_eq!(list.fds(), [7, 12, 5, 3]);
        assert_eq!(drain(&mut list), [7, 12, 5, 3]);
        assert_eq!(list.pop_front(), None);
    }

    #[test]
    fn removing_the_head_the_tail_and_the_middle_keeps_the_links() {
        let mut list = IdleList::new();
        for fd in 0..6 {
            list.push_back(fd);
        }
        list.remove(0);
        list.remove(5);
        list.remove(2);
        assert_eq!(drain(&mut list), [1, 3, 4]);
        list.push_back(4);
        list.remove(4);
        assert_eq!(list.pop_front(), None);
        list.push_back(9);
        assert_eq!(drain(&mut list), [9]);
    }

    #[test]
    fn the_connection_limit_is_reserved_exactly() {
        let shared = Shared {
            connections: AtomicUsize::new(0),
            max_connections: 2,
            shutdown: AtomicBool::new(false),
            loops: Mutex::new(Vec::new()),
        };
        assert!(shared.reserve());
        assert!(shared.reserve());
        assert!(!shared.reserve());
        shared.unreserve();
        assert!(shared.reserve());
        assert_eq!(shared.connections.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_idle_connection_is_a_few_words() {
        // What an idle keep-alive connection costs in the loop's fd table (plus its timer): no
        // buffers. Growing this grows every idle connection.
        let size = std::mem::size_of::<Source>();
        assert!(size <= 72, "Source is {size} bytes");
    }

    #[test]
    fn the_default_connection_limit_leaves_descriptors_free() {
        let (soft, _) = crate::nofile_limit().unwrap();
        let limit = default_max_connections() as u64;
        assert!(limit < soft, "{limit} < {soft}");
        assert!(limit >= soft / 2, "{limit} >= {soft} / 2");
    }
}

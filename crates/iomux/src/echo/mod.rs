//! Layer 4, the echo server behind `iomux echo`: every byte a client sends comes back, unchanged
//! ([`Mode::Echo`]) or with ASCII letters uppercased ([`Mode::Upper`]), over TCP or per UDP datagram,
//! in one of three programming models side by side — callbacks on the [event loop](crate::event_loop)
//! (`callback.rs`), one coroutine per connection on the [runtime](crate::runtime) (`coroutine.rs`,
//! the seeds' gevent server), and one blocking thread per connection (`threads.rs`, the seeds'
//! `socketserver`, kept as the baseline).
//!
//! ```
//! use std::io::{Read, Write};
//! use iomux::echo::{Config, Mode, Server};
//!
//! let server = Server::start(&Config { port: 0, mode: Mode::Upper, ..Config::default() })?;
//! let mut client = std::net::TcpStream::connect(server.local_addr())?;
//! client.write_all(b"hello, \xff world")?;
//! let mut reply = [0; 14];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"HELLO, \xff WORLD");
//! server.stop();
//! server.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What every model guarantees
//! - **Partial writes.** What the socket does not take at once is kept and written when the socket is
//!   writable again (the seeds' read/write separation); nothing is dropped.
//! - **Bounded output.** While a connection has output waiting, the server does not read from it: a
//!   client that sends without reading fills its own socket buffers and then waits, holding at most one
//!   read's worth ([`READ_BUFFER_BYTES`]) of server memory, and every other connection goes on.
//! - **Half-close.** A client that shuts down its write side gets everything back, then the server
//!   closes the connection.
//! - **Errors and resets** close that connection and release everything it held; nothing a peer does
//!   ends the server. Writes never raise `SIGPIPE` (std's sockets send with `MSG_NOSIGNAL`).
//! - **Idle connections are cheap.** Reads go into one buffer per worker thread (callback and
//!   coroutine models); a connection allocates only while part of its output waits.
//! - **fd limits.** On the select backend, a connection whose fd is at or above `FD_SETSIZE` is
//!   accepted, closed and logged on stderr with the typed
//!   [`FdTooLarge`](crate::selector::Error::FdTooLarge) error, while every other connection is served.
//!   When `accept` fails for lack of fds or memory (EMFILE, ENFILE), the server logs it once, pauses
//!   accepting for [`ACCEPT_PAUSE`] at a time — no spinning — and logs again when it recovers.
//! - **UDP** (`udp`): each datagram is transformed and sent back to its sender. When the socket's
//!   send buffer is full the callback model drops the reply (as UDP allows) and the other two wait
//!   for room.
//!
//! # Workers and stopping
//! The callback and coroutine models run `workers` threads (0: one per core), each with its own loop
//! or runtime and its own socket on the shared port (`SO_REUSEPORT`; with port 0 the first socket
//! binds and the others bind the port it got), so the kernel spreads connections over them. The threads
//! model has one accepting thread and one thread per connection. [`Server::stop`] stops every worker:
//! listeners and connections are closed. [`serve`] runs a server until `SIGINT` or `SIGTERM`.

mod callback;
mod coroutine;
mod threads;

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::event_loop::{self, EventLoop, Exit};
use crate::selector::BackendKind;

/// The size of each worker's read buffer, and so the most output one connection can have waiting.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long the server stops accepting after `accept` failed for lack of fds or memory.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// What the server does to the bytes before sending them back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Send every byte back unchanged.
    #[default]
    Echo,
    /// Uppercase ASCII `a`–`z`; every other byte (UTF-8 continuation bytes included) is unchanged,
    /// so any binary data is safe — unlike the seeds' `data.decode().upper()`.
    Upper,
}

impl Mode {
    /// Transforms `bytes` in place.
    ///
    /// ```
    /// use iomux::echo::Mode;
    /// let mut bytes = *b"abc-XYZ \xc3\xa9 \x00\xff";
    /// Mode::Upper.apply(&mut bytes);
    /// assert_eq!(&bytes, b"ABC-XYZ \xc3\xa9 \x00\xff");
    /// ```
    #[inline]
    pub fn apply(self, bytes: &mut [u8]) {
        if self == Mode::Upper {
            bytes.make_ascii_uppercase();
        }
    }

    /// The name the `--mode` flag takes: `echo` or `upper`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Upper => "upper",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Mode, UnknownName> {
        match name {
            "echo" => Ok(Mode::Echo),
            "upper" => Ok(Mode::Upper),
            _ => Err(UnknownName {
                what: "mode",
                name: name.to_owned(),
                expected: "echo or upper",
            }),
        }
    }
}

/// The programming model the server is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Model {
    /// Callbacks on the [event loop](crate::event_loop), one handler per socket (the seeds'
    /// `selectors` server).
    #[default]
    Callback,
    /// One task per connection on the [coroutine runtime](crate::runtime) (the seeds' gevent server).
    Coroutine,
    /// One blocking thread per connection, no selector (the seeds' `socketserver` with threads): the
    /// baseline the other two are compared with.
    Threads,
}

impl Model {
    /// The name the `--model` flag takes: `callback`, `coroutine` or `threads`.
    pub fn name(self) -> &'static str {
        match self {
            Model::Callback => "callback",
            Model::Coroutine => "coroutine",
            Model::Threads => "threads",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Model, UnknownName> {
        match name {
            "callback" => Ok(Model::Callback),
            "coroutine" => Ok(Model::Coroutine),
            "threads" => Ok(Model::Threads),
            _ => Err(UnknownName {
                what: "model",
                name: name.to_owned(),
                expected: "callback, coroutine or threads",
            }),
        }
    }
}

/// A mode or model name that is not one of the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}; expected {expected}")]
pub struct UnknownName {
    what: &'static str,
    name: String,
    expected: &'static str,
}

/// How to run the echo server; the fields are the flags of `iomux echo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The address to listen on, IPv4 or IPv6 (`--bind`, default 127.0.0.1).
    pub bind: IpAddr,
    /// The port (`--port`, default 8888, the seeds' port); 0 lets the kernel pick one, which
    /// [`Server::local_addr`] then tells.
    pub port: u16,
    /// What to do to the bytes (`--mode`).
    pub mode: Mode,
    /// The selector backend (`--backend`); `None` is the best one here (epoll on Linux). Must be
    /// `None` for [`Model::Threads`], which has no selector.
    pub backend: Option<BackendKind>,
    /// The programming model (`--model`).
    pub model: Model,
    /// Worker threads for the callback and coroutine models (`--workers`); 0 means one per core.
    /// Must be 1 for [`Model::Threads`].
    pub workers: usize,
    /// Echo UDP datagrams instead of TCP streams (`--udp`).
    pub udp: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8888,
            mode: Mode::Echo,
            backend: None,
            model: Model::Callback,
            workers: 1,
            udp: false,
        }
    }
}

/// Why the echo server could not start, or failed while running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend was chosen for the threads model, which uses blocking sockets and no selector.
    #[error(
        "the threads model uses blocking sockets and no selector, so it takes no backend ({backend} was given); drop the backend or use the callback or coroutine model"
    )]
    BackendWithThreads {
        /// The backend that was given.
        backend: BackendKind,
    },
    /// Workers other than 1 were asked of the threads model, which runs one thread per connection.
    #[error(
        "the threads model runs one thread per connection and takes no workers ({workers} were asked for); use the callback or coroutine model for worker threads"
    )]
    WorkersWithThreads {
        /// The number asked for.
        workers: usize,
    },
    /// The socket could not be created, bound or set to listen.
    #[error("cannot listen on {protocol}://{address}")]
    Bind {
        /// The address, as asked for (port 0 if the kernel was to pick one).
        address: SocketAddr,
        /// `tcp` or `udp`.
        protocol: &'static str,
        /// What the system call returned (e.g. `AddrInUse`, or `AddrNotAvailable` for `::1` on a
        /// host without IPv6).
        #[source]
        source: io::Error,
    },
    /// A worker could not start: its thread, its loop or runtime (e.g. the backend is unavailable,
    /// or EMFILE), or registering its socket.
    #[error("echo worker {worker} could not start")]
    Start {
        /// The worker's index, from 0.
        worker: usize,
        /// What failed; event loop, runtime and selector errors are inside, typed.
        #[source]
        source: io::Error,
    },
    /// A worker stopped with an error while serving (its selector's wait failed).
    #[error("echo worker {worker} failed")]
    Worker {
        /// The worker's index, from 0.
        worker: usize,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A worker thread panicked: a bug.
    #[error("echo worker {worker} panicked: {message}")]
    Panicked {
        /// The worker's index, from 0.
        worker: usize,
        /// The panic's message, or `<non-string panic payload>`.
        message: String,
    },
    /// `SIGINT` and `SIGTERM` could not be caught ([`serve`]).
    #[error("cannot listen for SIGINT and SIGTERM")]
    Signals(#[source] event_loop::Error),
    /// The `on_ready` callback of [`serve`] failed (e.g. writing the first line to a closed stdout).
    #[error("announcing the server failed")]
    Ready(#[source] io::Error),
}

impl From<Error> for io::Error {
    /// The OS error's kind where there is one (`AddrInUse`, EMFILE's `Other`…), `InvalidInput` for a
    /// configuration the threads model refuses.
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::BackendWithThreads { .. } | Error::WorkersWithThreads { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::Bind { source, .. }
            | Error::Start { source, .. }
            | Error::Worker { source, .. }
            | Error::Ready(source) => source.kind(),
            Error::Signals(source) => source
                .os_error()
                .map_or(io::ErrorKind::Other, io::Error::kind),
            Error::Panicked { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// A running echo server: its workers and their sockets. Dropping it stops it and waits for it.
pub struct Server {
    local_addr: SocketAddr,
    backend: Option<BackendKind>,
    model: Model,
    mode: Mode,
    udp: bool,
    workers: Vec<Worker>,
}

/// Stops one worker; callable from any thread, any number of times.
type StopFn = Box<dyn Fn() + Send + Sync>;

/// Called on a worker's thread when it ends, however it ends.
type ExitFn = Arc<dyn Fn() + Send + Sync>;

/// One worker thread and the way to stop it.
struct Worker {
    /// `None` once joined.
    thread: Option<thread::JoinHandle<io::Result<()>>>,
    stop: StopFn,
}

/// A worker's socket, bound and (for TCP) listening, non-blocking.
pub(crate) enum Bound {
    Tcp(std::net::TcpListener),
    Udp(UdpSocket),
}

/// What a model's worker needs besides its socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    /// The resolved backend (ignored by the threads model).
    pub(crate) backend: BackendKind,
}

/// The message a worker thread sends once it is set up (with the way to stop it); dropping it
/// unsent means the worker failed to start, and its thread's result says why.
pub(crate) struct Started(mpsc::SyncSender<StopFn>);

impl Started {
    /// Reports the worker set up and serving.
    pub(crate) fn serving(self, stop: impl Fn() + Send + Sync + 'static) {
        // The receiver waits for this message until it comes or the thread ends.
        let _ = self.0.send(Box::new(stop));
    }
}

impl Server {
    /// Binds the socket(s) and starts the workers; connections are served as soon as it returns.
    ///
    /// # Errors
    /// [`Error::BackendWithThreads`], [`Error::WorkersWithThreads`], [`Error::Bind`] or
    /// [`Error::Start`]; whatever started is stopped first.
    pub fn start(config: &Config) -> Result<Server, Error> {
        Server::start_with_exit(config, Arc::new(|| {}))
    }

    fn start_with_exit(config: &Config, on_exit: ExitFn) -> Result<Server, Error> {
        let count = match (config.model, config.backend, config.workers) {
            (Model::Threads, Some(backend), _) => {
                return Err(Error::BackendWithThreads { backend });
            }
            (Model::Threads, None, 1) => 1,
            (Model::Threads, None, workers) => return Err(Error::WorkersWithThreads { workers }),
            (_, _, 0) => thread::available_parallelism().map_or(1, NonZeroUsize::get),
            (_, _, workers) => workers,
        };
        let settings = Settings {
            mode: config.mode,
            backend: config.backend.unwrap_or_else(BackendKind::best),
        };
        let sockets = bind_all(config, count)?;
        let local_addr = match &sockets[0] {
            Bound::Tcp(listener) => listener.local_addr(),
            Bound::Udp(socket) => socket.local_addr(),
        }
        .map_err(|source| Error::Bind {
            address: SocketAddr::new(config.bind, config.port),
            protocol: protocol(config.udp),
            source,
        })?;
        let mut server = Server {
            local_addr,
            backend: (config.model != Model::Threads).then_some(settings.backend),
            model: config.model,
            mode: config.mode,
            udp: config.udp,
            workers: Vec::with_capacity(count),
        };
        for (index, socket) in sockets.into_iter().enumerate() {
            let worker = spawn_worker(index, config.model, socket, settings, Arc::clone(&on_exit))?;
            server.workers.push(worker);
        }
        Ok(server)
    }

    /// The address the server listens on, with the port the kernel chose for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The selector backend the workers use; `None` for the threads model.
    pub fn backend(&self) -> Option<BackendKind> {
        self.backend
    }

    /// The programming model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// What the server does to the bytes.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether it echoes UDP datagrams (else TCP streams).
    pub fn is_udp(&self) -> bool {
        self.udp
    }

    /// The URL scheme of its sockets: `tcp` or `udp`.
    pub fn protocol(&self) -> &'static str {
        protocol(self.udp)
    }

    /// The number of worker threads (1 for the threads model: the accepting thread).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Whether a worker has ended (after [`stop`](Server::stop), or because it failed).
    pub fn is_finished(&self) -> bool {
        self.workers
            .iter()
            .any(|worker| worker.thread.as_ref().is_none_or(|t| t.is_finished()))
    }

    /// Tells every worker to stop (closing its socket and connections); returns at once, and
    /// [`join`](Server::join) waits.
    pub fn stop(&self) {
        for worker in &self.workers {
            (worker.stop)();
        }
    }

    /// Waits for every worker to end: after [`stop`](Server::stop), or when they fail.
    ///
    /// # Errors
    /// The first worker's error: [`Error::Worker`] or [`Error::Panicked`].
    pub fn join(mut self) -> Result<(), Error> {
        self.join_all()
    }

    fn join_all(&mut self) -> Result<(), Error> {
        let mut first = None;
        for (index, worker) in self.workers.iter_mut().enumerate() {
            let Some(thread) = worker.thread.take() else {
                continue;
            };
            if let Err(error) = join_worker(index, thread, |worker, source| Error::Worker {
                worker,
                source,
            }) {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // Errors were the caller's to collect with `join`.
        let _ = self.join_all();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("protocol", &self.protocol())
            .field("backend", &self.backend)
            .field("model", &self.model)
            .field("mode", &self.mode)
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// Runs an echo server until `SIGINT` or `SIGTERM` (then stops it gracefully and returns `Ok`), or
/// until a worker fails. `on_ready` is called once the server listens and the signals are caught —
/// the place to print the address.
///
/// # Errors
/// As [`Server::start`] and [`Server::join`]; [`Error::Signals`] if the signals cannot be caught;
/// [`Error::Ready`] if `on_ready` fails (the server is stopped).
pub fn serve(
    config: &Config,
    on_ready: impl FnOnce(&Server) -> io::Result<()>,
) -> Result<(), Error> {
    let mut signals: EventLoop = EventLoop::new().map_err(Error::Signals)?;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signals
            .on_signal(signal, |event_loop, signal| {
                let name = if signal == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                log(format_args!("{name}: stopping"));
                event_loop.stop();
            })
            .map_err(Error::Signals)?;
    }
    let handle = signals.handle();
    // A worker that ends by itself (it failed) ends the wait too.
    let on_exit: ExitFn = Arc::new(move || {
        let _ = handle.stop();
    });
    let server = Server::start_with_exit(config, on_exit)?;
    on_ready(&server).map_err(Error::Ready)?;
    loop {
        // Signals and handles do not keep `run` going, so wait with a far deadline instead.
        let deadline = Instant::now() + Duration::from_secs(3600);
        match signals.run_until(deadline) {
            Ok(Exit::Deadline) => {}
            Ok(_) => break,
            Err(error) => {
                log(format_args!(
                    "waiting for signals failed: {}; stopping",
                    Chain(&error)
                ));
                break;
            }
        }
    }
    server.stop();
    server.join()
}

fn protocol(udp: bool) -> &'static str {
    if udp { "udp" } else { "tcp" }
}

/// Binds `count` sockets to the configured address: the first one as asked, the others to the port
/// it got, all with `SO_REUSEPORT` when there are several.
fn bind_all(config: &Config, count: usize) -> Result<Vec<Bound>, Error> {
    let requested = SocketAddr::new(config.bind, config.port);
    let reuse_port = count > 1;
    let bind_error = |address, source| Error::Bind {
        address,
        protocol: protocol(config.udp),
        source,
    };
    let first = bind(requested, config.udp, reuse_port).map_err(|e| bind_error(requested, e))?;
    let address = match &first {
        Bound::Tcp(listener) => listener.local_addr(),
        Bound::Udp(socket) => socket.local_addr(),
    }
    .map_err(|e| bind_error(requested, e))?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind(address, config.udp, true).map_err(|e| bind_error(address, e))?);
    }
    Ok(sockets)
}

/// One non-blocking, close-on-exec socket bound to `address` (and listening, for TCP, with a
/// `SOMAXCONN` backlog).
fn bind(address: SocketAddr, udp: bool, reuse_port: bool) -> io::Result<Bound> {
    if !udp {
        return crate::net::listen(address, reuse_port).map(Bound::Tcp);
    }
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    Ok(Bound::Udp(socket.into()))
}

/// Starts worker `index` of `model` on `socket` and waits until it serves (or failed to start).
fn spawn_worker(
    index: usize,
    model: Model,
    socket: Bound,
    settings: Settings,
    on_exit: ExitFn,
) -> Result<Worker, Error> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let started = Started(sender);
    let thread = thread::Builder::new()
        .name(format!("iomux-echo-{index}"))
        .spawn(move || {
            let _exit = OnExit(on_exit);
            match model {
                Model::Callback => callback::run(socket, settings, started),
                Model::Coroutine => coroutine::run(socket, settings, started),
                Model::Threads => threads::run(socket, settings, started),
            }
        })
        .map_err(|source| Error::Start {
            worker: index,
            source,
        })?;
    match receiver.recv() {
        Ok(stop) => Ok(Worker {
            thread: Some(thread),
            stop,
        }),
        // The thread ended before it was set up: its result says why.
        Err(mpsc::RecvError) => {
            join_worker(index, thread, |worker, source| Error::Start {
                worker,
                source,
            })?;
            Err(Error::Start {
                worker: index,
                source: io::Error::other("the worker ended before it started serving"),
            })
        }
    }
}

/// Joins a worker's thread; its error is made into an [`Error`] by `wrap`.
fn join_worker(
    index: usize,
    thread: thread::JoinHandle<io::Result<()>>,
    wrap: fn(usize, io::Error) -> Error,
) -> Result<(), Error> {
    match thread.join() {
        Ok(result) => result.map_err(|source| wrap(index, source)),
        Err(payload) => Err(Error::Panicked {
            worker: index,
            message: payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_owned()),
        }),
    }
}

/// Calls the exit hook when a worker's thread ends, also by panic.
struct OnExit(ExitFn);

impl Drop for OnExit {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Writes one diagnostic line, `iomux echo: …`, to stderr. A failed write is ignored: a server must
/// not stop because nobody reads its diagnostics.
pub(crate) fn log(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "iomux echo: {message}");
}

/// Displays an error and its sources, `outer: inner: innermost`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// A streak of failed accepts (out of fds or memory), logged once when it starts and once when it
/// ends, so a server out of fds neither floods stderr nor hides the problem.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AcceptFailures {
    /// When the current streak began; `None` while accepts succeed.
    since: Option<Instant>,
}

impl AcceptFailures {
    /// Records a failed accept (the caller then pauses for [`ACCEPT_PAUSE`]).
    pub(crate) fn failed(&mut self, error: &io::Error) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            log(format_args!(
                "accept failed: {error}; pausing accepts for {} ms at a time until it succeeds",
                ACCEPT_PAUSE.as_millis()
            ));
        }
    }

    /// Records a successful accept.
    #[inline]
    pub(crate) fn succeeded(&mut self) {
        if let Some(since) = self.since.take() {
            log(format_args!(
                "accepting again after {} ms",
                since.elapsed().as_millis()
            ));
        }
    }
}

/// Logs a connection the selector refused (select and an fd at or above `FD_SETSIZE`), which has
/// been closed.
pub(crate) fn log_refused(peer: Option<SocketAddr>, error: &(dyn std::error::Error + 'static)) {
    match peer {
        Some(peer) => log(format_args!(
            "closed the connection from {peer}: {}",
            Chain(error)
        )),
        None => log(format_args!("closed a new connection: {}", Chain(error))),
    }
}

/// A lock that a panic elsewhere does not poison: the data behind it stays consistent because
/// nothing under these locks can panic half-way.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_changes_only_ascii_lowercase_letters() {
        let mut every: Vec<u8> = (0..=255).collect();
        Mode::Upper.apply(&mut every);
        for (byte, out) in (0..=255u8).zip(every) {
            let expected = if byte.is_ascii_lowercase() {
                byte - 32
            } else {
                byte
            };
            assert_eq!(out, expected, "byte {byte:#04x}");
        }
        let mut same: Vec<u8> = (0..=255).collect();
        Mode::Echo.apply(&mut same);
        assert!(same.iter().copied().eq(0..=255));
    }

    #[test]
    fn names_round_trip() {
        for mode in [Mode::Echo, Mode::Upper] {
            assert_eq!(mode.name().parse::<Mode>(), Ok(mode));
        }
        for model in [Model::Callback, Model::Coroutine, Model::Threads] {
            assert_eq!(model.to_string().parse::<Model>(), Ok(model));
        }
        let error = "fast".parse::<Model>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown model \"fast\"; expected callback, coroutine or threads"
        );
    }

    #[test]
    fn the_threads_model_takes_no_backend_and_no_workers() {
        let config = Config {
            port: 0,
            model: Model::Threads,
            backend: Some(BackendKind::Poll),
            ..Config::default()
        };
        assert!(matches!(
            Server::start(&config),
            Err(Error::BackendWithThreads {
                backend: BackendKind::Poll
            })
        ));
        let config = Config {
            backend: None,
            workers: 2,
            ..config
        };
        let Err(error) = Server::start(&config) else {
            panic!("the threads model accepted two workers");
        };
        assert!(matches!(error, Error::WorkersWithThreads { workers: 2 }));
        assert_eq!(io::Error::from(error).kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_taken_port_is_a_bind_error_naming_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let Err(error) = Server::start(&Config {
            port,
            ..Config::default()
        }) else {
            panic!("two listeners bound 127.0.0.1:{port} without SO_REUSEPORT");
        };
        assert_eq!(
            error.to_string(),
            format!("cannot listen on tcp://127.0.0.1:{port}")
        );
        assert_eq!(io::Error::from(error).kind(), io::ErrorKind::AddrInUse);
    }
}

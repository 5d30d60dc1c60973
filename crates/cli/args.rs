//! The command line of `iomux`, declared with clap's derive API: one [`Command`] per subcommand, each
//! with its own argument struct, so a new subcommand is one variant and one struct.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use iomux::selector::BackendKind;

/// Event-driven network IO from the system calls up: selectors over select, poll and epoll, and the
/// tools built on them.
#[derive(Debug, Parser)]
#[command(name = "iomux", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `iomux`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure iomux's building blocks.
    Bench(BenchArgs),
    /// Talk to a TCP server line by line: send standard input, print what comes back.
    #[command(
        long_about = "Talk to a TCP server line by line: send each line of standard input with its \
                      newline, and print what comes back up to each newline as it arrives.\n\n\
                      At the end of input the client shuts its write side (the server sees end of \
                      stream), prints the rest until the server closes, and exits 0. Bytes pass \
                      unchanged both ways. Works in a pipe: printf 'a\\nb\\n' | iomux client \
                      127.0.0.1:8888"
    )]
    Client(ClientArgs),
    /// Generate load against a server.
    Load(LoadArgs),
    /// Serve a directory over HTTP/1.1: a static file server on iomux's own event loop.
    Http(HttpArgs),
    /// Run an echo server: every byte comes back, unchanged or uppercased.
    #[command(
        long_about = "Run an echo server: every byte a client sends comes back, unchanged or \
                      uppercased (ASCII a-z only: binary-safe), over TCP or, with --udp, per \
                      datagram.\n\n\
                      The first line on stdout is `iomux echo: listening on tcp://ADDR:PORT \
                      (backend B, model M, workers N)` (`udp://` with --udp; `backend none` for \
                      --model threads), so scripts can start it with --port 0 and read the port; \
                      diagnostics go to stderr. SIGINT or SIGTERM stops it (exit status 0).\n\n\
                      Talk to it with `iomux client 127.0.0.1:8888`, or `nc 127.0.0.1 8888`."
    )]
    Echo(EchoArgs),
}

/// Options of `iomux client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server to connect to, as HOST:PORT (e.g. 127.0.0.1:8888; an IPv6 host in brackets)
    #[arg(value_name = "HOST:PORT")]
    pub address: String,
}

/// `iomux load`: which kind of server to load.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The kind of server.
    #[command(subcommand)]
    pub target: LoadTarget,
}

/// The load generators of `iomux load`.
#[derive(Debug, Subcommand)]
pub enum LoadTarget {
    /// Ping-pong against an echo server: each connection sends a message, reads it back, checks it
    /// and repeats; reports messages/s and round-trip latency.
    #[command(
        long_about = "Ping-pong against an echo server: each connection sends --size bytes, reads the \
                      same bytes back, checks them and repeats, one message in flight per \
                      connection, for --duration seconds after every connection is open.\n\n\
                      Reports messages per second and the p50, p99 and max round-trip latency; a \
                      connection that fails to connect, errs, closes or sends back other bytes counts \
                      as an error and the others go on. Exits 1 only if no connection could be \
                      opened. Runs on iomux's own runtime."
    )]
    Echo(LoadEchoArgs),
}

/// Options of `iomux load echo`.
#[derive(Debug, Args)]
pub struct LoadEchoArgs {
    /// The echo server, as HOST:PORT
    #[arg(value_name = "HOST:PORT")]
    pub address: String,

    /// Concurrent connections
    #[arg(
        short = 'c',
        long,
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub connections: u32,

    /// Seconds of load after every connection is open (fractions allowed, at most a day)
    #[arg(short = 'd', long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,

    /// Bytes per message
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024)
    )]
    pub size: u32,

    /// Client threads, each with its own runtime and a share of the connections
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,

    /// The selector backend of the client's runtime: auto (the best here), select, poll or epoll
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = parse_backend_or_auto)]
    pub backend: BackendKind,

    /// Print one JSON object on stdout instead of a sentence
    #[arg(long)]
    pub json: bool,
}

/// `iomux bench`: which benchmark to run.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks of `iomux bench`.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Time one wait + dispatch on select, poll and epoll as the number of registered fds (N) and of
    /// ready ones (K) grow.
    #[command(
        long_about = "Time one wait + dispatch on select, poll and epoll as the number of registered \
                      fds (N) and of ready ones (K) grow.\n\n\
                      Each of the N fds is a UDP socket on 127.0.0.1; K of them hold one unread \
                      datagram, so they stay readable (level-triggered). One operation is a \
                      select(timeout) returning the K ready fds, then a lookup of each one's key and \
                      a read of its data. select and poll scan all N fds on every call; epoll only \
                      the K ready ones."
    )]
    Selectors(SelectorsArgs),
}

/// Options of `iomux bench selectors`.
#[derive(Debug, Args)]
pub struct SelectorsArgs {
    /// Backends to measure, comma-separated [default: every backend available here]
    #[arg(long = "backend", value_name = "LIST", value_delimiter = ',', value_parser = parse_backend)]
    pub backends: Vec<BackendKind>,

    /// Numbers of registered fds (N), comma-separated; select only measures N that fit below its
    /// limit of 1024
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "10,100,1000,10000",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub fds: Vec<u32>,

    /// Numbers of ready fds (K) among the N, comma-separated
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,10",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub active: Vec<u32>,

    /// Where the K ready fds sit among the N (select and poll scan in fd order)
    #[arg(long, value_enum, default_value_t = Placement::Spread)]
    pub placement: Placement,

    /// The timeout passed to each wait, in milliseconds; the wait returns at once because K fds are
    /// ready, but select and poll do more work for a non-zero timeout
    #[arg(long = "timeout", value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Rounds per point (at least 5); a figure is the median of the rounds, with the backends' order
    /// rotated each round
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..=1000))]
    pub rounds: u32,

    /// Also write the results as JSON: an array with one record per measured point
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also draw the results as a log-log SVG chart
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Where the K ready fds sit among the N registered ones, in the order they were opened (fd order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// The first K fds opened (the lowest numbers): select and poll find them early.
    Start,
    /// Evenly spread: one in the middle of each of K equal slices.
    Spread,
    /// The last K fds opened (the highest numbers): select and poll scan past all others first.
    End,
}

impl Placement {
    /// The name the `--placement` flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Start => "start",
            Placement::Spread => "spread",
            Placement::End => "end",
        }
    }
}

/// Options of `iomux http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// The document root; nothing outside it is ever served
    #[arg(default_value = ".")]
    pub root: PathBuf,

    /// The address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// The port to listen on; 0 picks a free one (the first line of output names it)
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// The selector backend: auto (the best available: epoll on Linux), select, poll or epoll
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = parse_backend_or_auto)]
    pub backend: BackendKind,

    /// Worker threads, each with its own event loop and listener (SO_REUSEPORT); 0 means one per core
    #[arg(long, default_value_t = 1)]
    pub workers: usize,

    /// Serve an HTML listing for a directory without index.html (otherwise 404)
    #[arg(long)]
    pub listing: bool,

    /// Follow symbolic links that lead outside the root (otherwise such paths are 404)
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Serve and list dotfiles (otherwise any path segment starting with "." is 404)
    #[arg(long)]
    pub show_hidden: bool,

    /// Send large files with read/write instead of sendfile(2), for file systems where sendfile fails
    #[arg(long)]
    pub no_sendfile: bool,

    /// How long a request head may take to arrive, from its first byte, before 408
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// How long an idle keep-alive connection stays open
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_seconds)]
    pub keepalive_timeout: Duration,

    /// The most connections open at once; at the limit the least recently active idle one is closed,
    /// and accepting pauses while none is idle [default: RLIMIT_NOFILE - 64, or half a limit of 128
    /// or less]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// How long a graceful shutdown (SIGINT, SIGTERM) waits for responses in flight
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,

    /// No access log on stdout
    #[arg(long)]
    pub quiet: bool,
}

/// Parses one backend name and checks it is compiled in here.
fn parse_backend(name: &str) -> Result<BackendKind, String> {
    let kind: BackendKind = name.parse().map_err(|err| format!("{err}"))?;
    if kind.is_available() {
        Ok(kind)
    } else {
        Err(format!("backend {kind} is not available on this platform"))
    }
}

/// Parses `auto` (the best backend available here) or a backend name, as `--backend` of `iomux http`
/// takes it.
fn parse_backend_or_auto(name: &str) -> Result<BackendKind, String> {
    if name == "auto" {
        return Ok(BackendKind::best());
    }
    parse_backend(name).map_err(|error| format!("{error} (or auto)"))
}

/// Parses a positive number of seconds, fractions allowed (`0.5`), up to a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    const DAY: f64 = 24.0 * 60.0 * 60.0;
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= DAY) {
        return Err(format!(
            "{text} is out of range; give more than 0 and at most {DAY} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Options of `iomux echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// The address to listen on, IPv4 or IPv6
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// The port to listen on; 0 picks a free one (the first line says which)
    #[arg(long, default_value_t = 8888)]
    pub port: u16,

    /// What to send back: the bytes unchanged, or with ASCII a-z uppercased
    #[arg(long, value_enum, default_value_t = EchoMode::Echo)]
    pub mode: EchoMode,

    /// The selector backend [default: auto, the best here]; not with --model threads
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,

    /// The programming model: callbacks on the event loop, a coroutine per connection, or a blocking
    /// thread per connection (the baseline)
    #[arg(long, value_enum, default_value_t = EchoModel::Callback)]
    pub model: EchoModel,

    /// Worker threads, each with its own loop and socket on the shared port (SO_REUSEPORT); 0 means
    /// one per core; callback and coroutine models only
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub workers: u16,

    /// Echo UDP datagrams instead of TCP streams
    #[arg(long)]
    pub udp: bool,
}

/// `--mode` of `iomux echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EchoMode {
    /// Every byte back unchanged.
    Echo,
    /// ASCII a-z uppercased, every other byte unchanged.
    Upper,
}

/// `--model` of `iomux echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EchoModel {
    /// Callbacks on the event loop.
    Callback,
    /// One coroutine (task) per connection on the runtime.
    Coroutine,
    /// One blocking thread per connection, no selector.
    Threads,
}

/// A `--backend` choice: a backend, or `auto` for the best one here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The best backend here (epoll on Linux).
    Auto,
    /// select(2).
    Select,
    /// poll(2).
    Poll,
    /// epoll(7).
    Epoll,
}

impl BackendChoice {
    /// The backend chosen; `None` for `auto`.
    pub fn kind(self) -> Option<BackendKind> {
        match self {
            BackendChoice::Auto => None,
            BackendChoice::Select => Some(BackendKind::Select),
            BackendChoice::Poll => Some(BackendKind::Poll),
            BackendChoice::Epoll => Some(BackendKind::Epoll),
        }
    }
}

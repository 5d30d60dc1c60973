//! The command line of `iomux`, declared with clap's derive API: one [`Command`] per subcommand, each
//! with its own argument struct, so a new subcommand is one variant and one struct.

use std::path::PathBuf;

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

/// Parses one backend name and checks it is compiled in here.
fn parse_backend(name: &str) -> Result<BackendKind, String> {
    let kind: BackendKind = name.parse().map_err(|err| format!("{err}"))?;
    if kind.is_available() {
        Ok(kind)
    } else {
        Err(format!("backend {kind} is not available on this platform"))
    }
}

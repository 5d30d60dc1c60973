//! `iomux load echo`: a ping-pong load generator on iomux's own coroutine runtime (layer 3). It lives
//! in the command, not the library: it is a client tool, and its histogram and progress bar come from
//! tool-only crates.
//!
//! Each client thread (one by default) runs its own [`Runtime`] over the chosen backend and a share of
//! the connections, one task per connection. Every connection is opened first; then all start at once
//! and each sends a message, reads the same number of bytes back, checks them, records the round trip
//! and repeats until the duration is over. A connection that fails — refused, reset, closed, stalled
//! for 10 s or echoing other bytes — stops and counts as an error; the others go on. Latencies go into
//! an HDR histogram per thread (bounded memory: 1 ns to 60 s at 3 significant digits), merged at the
//! end.
//!
//! The JSON keys match the peers' `echo_load` (`messages`, `messages_per_sec`, `p50_us`, `p99_us`,
//! `max_us`, `errors`, `duration_s`), which the benchmark harness reads.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_lite::future::try_zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iomux::net::TcpStream;
use iomux::runtime::{BackendKind, Runtime, spawn, timeout};
use serde::Serialize;

use crate::args::{LoadArgs, LoadEchoArgs, LoadTarget};

/// Longest a connect or one round trip may take before the connection counts as failed.
const STALL: Duration = Duration::from_secs(10);
/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// fds the process needs besides its connections: stdio, each runtime's selector and waker.
const FD_RESERVE: u64 = 32;

/// Runs `iomux load`.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    match args.target {
        LoadTarget::Echo(args) => echo(args),
    }
}

/// What every client thread is asked to do.
#[derive(Clone, Copy, Debug)]
struct Plan {
    target: SocketAddr,
    size: usize,
    backend: BackendKind,
}

/// What one client thread measured.
struct Tally {
    /// Connections opened.
    connected: u64,
    /// Connections that failed to open, or failed during the load.
    errors: u64,
    /// The first failure, to tell the user why.
    first_error: Option<String>,
    /// Round trips completed and checked.
    messages: u64,
    /// Round-trip latencies in nanoseconds.
    histogram: Histogram<u64>,
    /// When the thread's last connection stopped.
    finished: Instant,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            connected: 0,
            errors: 0,
            first_error: None,
            messages: 0,
            histogram: new_histogram(),
            finished: Instant::now(),
        }
    }

    /// Counts `count` failed connections, remembering the first reason.
    fn fail(&mut self, count: u64, reason: impl FnOnce() -> String) {
        self.errors += count;
        if self.first_error.is_none() {
            self.first_error = Some(reason());
        }
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.connected += other.connected;
        self.errors += other.errors;
        self.messages += other.messages;
        self.first_error = self.first_error.take().or(other.first_error);
        self.finished = self.finished.max(other.finished);
        self.histogram
            .add(&other.histogram)
            .context("merging latency histograms")
    }
}

/// The result, as printed with `--json` (key names shared with the peers' `echo_load`).
#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    target: String,
    backend: String,
    connections: u64,
    connected: u64,
    errors: u64,
    size: usize,
    threads: usize,
    duration_s: f64,
    messages: u64,
    messages_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    first_error: Option<String>,
}

/// Runs `iomux load echo`.
fn echo(args: LoadEchoArgs) -> anyhow::Result<()> {
    let target = resolve(&args.address)?;
    let connections = u64::from(args.connections);
    match iomux::raise_nofile_limit() {
        Ok(limit) if limit < connections + FD_RESERVE => eprintln!(
            "iomux load: the open-file limit is {limit}; some of the {connections} connections will fail"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("iomux load: cannot raise the open-file limit: {error}"),
    }
    let plan = Plan {
        target,
        size: usize::try_from(args.size).context("the message size does not fit in memory")?,
        backend: args.backend,
    };
    let threads = u64::from(args.threads.min(args.connections));

    // Each thread opens its connections, says so on `ready`, then waits for its start signal.
    let (ready_sender, ready) = mpsc::channel::<()>();
    let mut starts = Vec::new();
    let mut workers = Vec::new();
    let mut counters = Vec::new();
    for index in 0..threads {
        let share = connections / threads + u64::from(index < connections % threads);
        let (start_sender, start) = mpsc::channel::<Instant>();
        let counter = Arc::new(AtomicU64::new(0));
        let (ready, thread_counter) = (ready_sender.clone(), Arc::clone(&counter));
        let worker = thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || client_thread(plan, share, &ready, &start, &thread_counter))
            .context("starting a client thread")?;
        starts.push(start_sender);
        workers.push(worker);
        counters.push(counter);
    }
    drop(ready_sender);
    // One message per thread; a thread that died drops its sender without one.
    for _ in 0..threads {
        if ready.recv().is_err() {
            break;
        }
    }

    let started = Instant::now();
    let deadline = started + args.duration;
    for start in &starts {
        // A thread that is gone has nothing to start; its join below says why.
        let _ = start.send(deadline);
    }
    let progress = progress_bar(args.duration);
    while !workers.iter().all(|worker| worker.is_finished()) {
        thread::sleep(PROGRESS_INTERVAL);
        let messages: u64 = counters
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum();
        let elapsed = started.elapsed();
        progress.set_position(u64::try_from(elapsed.min(args.duration).as_millis()).unwrap_or(0));
        progress.set_message(format!(
            "{messages} messages, {:.0}/s",
            messages as f64 / elapsed.as_secs_f64().max(1e-9)
        ));
    }
    progress.finish_and_clear();

    let mut total = Tally::new();
    total.finished = started;
    for worker in workers {
        let tally = worker
            .join()
            .map_err(|_| anyhow!("a client thread panicked"))?;
        total.merge(tally)?;
    }
    let duration_s = total
        .finished
        .duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    let micros = |nanos: u64| nanos as f64 / 1000.0;
    let report = Report {
        tool: "iomux load echo",
        target: target.to_string(),
        backend: plan.backend.to_string(),
        connections,
        connected: total.connected,
        errors: total.errors,
        size: plan.size,
        threads: usize::try_from(threads).unwrap_or(usize::MAX),
        duration_s,
        messages: total.messages,
        messages_per_sec: total.messages as f64 / duration_s,
        p50_us: micros(total.histogram.value_at_quantile(0.5)),
        p99_us: micros(total.histogram.value_at_quantile(0.99)),
        max_us: micros(total.histogram.max()),
        first_error: total.first_error.clone(),
    };
    print_report(&report, args.json)?;
    if let Some(first) = &report.first_error {
        if report.connected == 0 {
            bail!("no connection to {target} could be opened; first error: {first}");
        }
        eprintln!(
            "iomux load: {} of {connections} connections failed; first error: {first}",
            report.errors
        );
    }
    Ok(())
}

/// The first address `address` resolves to.
fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    address
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .ok_or_else(|| anyhow!("{address} resolved to no address"))
}

/// Prints the report on stdout: one JSON object, or one sentence.
fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string(report).context("encoding the report")?
    } else {
        format!(
            "{} messages in {:.2} s over {}/{} connections to {} ({} errors): {:.0} messages/s; \
             round trip p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            report.messages,
            report.duration_s,
            report.connected,
            report.connections,
            report.target,
            report.errors,
            report.messages_per_sec,
            report.p50_us,
            report.p99_us,
            report.max_us
        )
    };
    writeln!(io::stdout(), "{text}").context("writing to standard output")
}

/// A progress bar over the duration, on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress_bar(duration: Duration) -> ProgressBar {
    let length = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let progress = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {elapsed} {msg}")
            .expect("the template is a valid literal")
            .progress_chars("=> "),
    );
    progress
}

/// Latency histogram in nanoseconds: 1 ns to 60 s, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// One client thread: opens `count` connections, reports on `ready`, waits for the deadline on
/// `start`, then runs the load until then.
fn client_thread(
    plan: Plan,
    count: u64,
    ready: &mpsc::Sender<()>,
    start: &mpsc::Receiver<Instant>,
    counter: &Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let runtime = match Runtime::builder().backend(plan.backend).build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tally.fail(count, || {
                format!("creating a {} runtime: {error}", plan.backend)
            });
            let _ = ready.send(());
            return tally;
        }
    };
    let streams = runtime.block_on(connect_all(plan.target, count, &mut tally));
    let _ = ready.send(());
    let Ok(deadline) = start.recv() else {
        return tally;
    };
    let histogram = Rc::new(RefCell::new(new_histogram()));
    runtime.block_on(async {
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(index, stream)| {
                let (histogram, counter) = (Rc::clone(&histogram), Arc::clone(counter));
                spawn(ping_pong(
                    stream, plan.size, index, deadline, histogram, counter,
                ))
            })
            .collect();
        for task in tasks {
            match task.await {
                Ok((messages, result)) => {
                    tally.messages += messages;
                    if let Err(error) = result {
                        tally.fail(1, || error.to_string());
                    }
                }
                Err(error) => tally.fail(1, || error.to_string()),
            }
        }
    });
    tally.finished = Instant::now();
    tally.histogram = Rc::try_unwrap(histogram)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| shared.borrow().clone());
    tally
}

/// Opens `count` connections to `target` at once; failures are counted in `tally`.
async fn connect_all(target: SocketAddr, count: u64, tally: &mut Tally) -> Vec<TcpStream> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            spawn(async move {
                let stream = timeout(STALL, TcpStream::connect(target))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {} s", STALL.as_secs()),
                        )
                    })??;
                stream.set_nodelay(true)?;
                io::Result::Ok(stream)
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task
            .await
            .map_err(io::Error::from)
            .and_then(|result| result)
        {
            Ok(stream) => streams.push(stream),
            Err(error) => tally.fail(1, || format!("connecting to {target}: {error}")),
        }
    }
    tally.connected = u64::try_from(streams.len()).unwrap_or(u64::MAX);
    streams
}

/// Round trips on one connection until `deadline`: returns how many completed, and the error that
/// ended it early, if any.
async fn ping_pong(
    stream: TcpStream,
    size: usize,
    index: usize,
    deadline: Instant,
    histogram: Rc<RefCell<Histogram<u64>>>,
    counter: Arc<AtomicU64>,
) -> (u64, io::Result<()>) {
    // Bytes that differ between connections and positions; the first 8 carry the round's number, so a
    // stale or misplaced echo does not pass the check.
    let mut message: Vec<u8> = (0..size)
        .map(|position| {
            (position
                .wrapping_mul(31)
                .wrapping_add(index.wrapping_mul(7))
                % 251) as u8
        })
        .collect();
    let mut reply = vec![0; size];
    let stamp = size.min(8);
    let mut done: u64 = 0;
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            return (done, Ok(()));
        }
        message[..stamp].copy_from_slice(&done.to_le_bytes()[..stamp]);
        // Written and read at once: a message larger than the socket buffers cannot deadlock.
        let (mut writer, mut reader) = (&stream, &stream);
        let round_trip = try_zip(writer.write_all(&message), reader.read_exact(&mut reply));
        match timeout(STALL, round_trip).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return (done, Err(closed_early(done)));
            }
            Ok(Err(error)) => return (done, Err(error)),
            Err(_) => {
                let message = format!("no echo within {} s", STALL.as_secs());
                return (done, Err(io::Error::new(io::ErrorKind::TimedOut, message)));
            }
        }
        if reply != message {
            let at = reply
                .iter()
                .zip(&message)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let error = format!("the echo differs from the message sent, first at byte {at}");
            return (done, Err(io::Error::new(io::ErrorKind::InvalidData, error)));
        }
        let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.borrow_mut().saturating_record(nanos.max(1));
        done += 1;
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The error for a server that closed the connection in the middle of the load.
fn closed_early(done: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the server closed the connection after {done} round trips"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_tallies_add_up_and_keep_the_first_error() {
        let mut total = Tally::new();
        let mut one = Tally::new();
        one.connected = 2;
        one.messages = 10;
        one.histogram.record(1_000).unwrap();
        let mut two = Tally::new();
        two.fail(3, || "refused".to_owned());
        two.fail(1, || "reset".to_owned());
        two.histogram.record(5_000).unwrap();
        total.merge(one).unwrap();
        total.merge(two).unwrap();
        assert_eq!((total.connected, total.errors, total.messages), (2, 4, 10));
        assert_eq!(total.first_error.as_deref(), Some("refused"));
        assert_eq!(total.histogram.len(), 2);
        assert!(total.histogram.value_at_quantile(0.5) <= total.histogram.max());
    }
}

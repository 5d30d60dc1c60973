//! The external cross-check of `iomux load echo`: a ping-pong load generator on tokio. Each connection writes
//! one message of `--size` bytes, reads the whole echo back, records the round trip, and repeats until the
//! duration is over. Connections are all opened first, then start together. `--threads N` runs N independent
//! current_thread runtimes, each with its share of the connections and its own latency histogram.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use iomux_bench_peers::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::LocalSet;

const USAGE: &str =
    "usage: echo_load HOST:PORT [-c CONNS] [-d SECONDS] [--size BYTES] [--threads N] [--json]

  -c, --connections  concurrent connections (default 64)
  -d, --duration     seconds of load after all connections are open (default 5)
  --size             bytes per message (default 64)
  --threads          client threads, each its own current_thread runtime (default 1)
  --json             print one JSON object instead of text";

/// Longest a connect or a single round trip may take before the connection counts as failed.
const STALL: Duration = Duration::from_secs(10);

/// What one client thread measured.
struct ThreadResult {
    connected: usize,
    errors: usize,
    messages: u64,
    histogram: Histogram<u64>,
    finished: Instant,
}

fn main() {
    let mut args = Args::from_env(USAGE);
    let connections: usize = args.value(&["-c", "--connections"]).unwrap_or(64);
    let seconds: f64 = args.value(&["-d", "--duration"]).unwrap_or(5.0);
    let size: usize = args.value(&["--size"]).unwrap_or(64);
    let threads: usize = args.value(&["--threads"]).unwrap_or(1);
    let json = args.flag(&["--json"]);
    let Some(target) = args.positional() else {
        args.fail("HOST:PORT is required")
    };
    if connections == 0 || size == 0 || threads == 0 || !(seconds > 0.0 && seconds <= 3600.0) {
        args.fail(
            "connections, size and threads must be positive and the duration within (0, 3600] s",
        );
    }
    let addr = match target.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(addr) => addr,
        None => args.fail(&format!("cannot resolve {target:?}")),
    };
    args.finish();

    let duration = Duration::from_secs_f64(seconds);
    let threads = threads.min(connections);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let share = connections / threads + usize::from(t < connections % threads);
        let barrier = Arc::clone(&barrier);
        handles.push(std::thread::spawn(move || {
            run_thread(addr, share, size, duration, &barrier)
        }));
    }
    barrier.wait();
    let started = Instant::now();

    let mut total = ThreadResult {
        connected: 0,
        errors: 0,
        messages: 0,
        histogram: new_histogram(),
        finished: started,
    };
    for handle in handles {
        let r = match handle.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                eprintln!("echo_load: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("echo_load: a client thread panicked");
                std::process::exit(1);
            }
        };
        total.connected += r.connected;
        total.errors += r.errors;
        total.messages += r.messages;
        total
            .histogram
            .add(&r.histogram)
            .expect("histograms share their bounds");
        total.finished = total.finished.max(r.finished);
    }
    let elapsed = total
        .finished
        .duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    let rate = total.messages as f64 / elapsed;
    let us = |q: f64| total.histogram.value_at_quantile(q) as f64 / 1000.0;
    if json {
        println!(
            "{{\"tool\":\"echo_load\",\"target\":\"{addr}\",\"connections\":{connections},\"connected\":{},\
             \"errors\":{},\"size\":{size},\"threads\":{threads},\"duration_s\":{elapsed:.6},\"messages\":{},\
             \"messages_per_sec\":{rate:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
            total.connected,
            total.errors,
            total.messages,
            us(0.5),
            us(0.99),
            total.histogram.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{} messages in {elapsed:.2} s over {}/{connections} connections ({} errors): {rate:.0} msg/s, \
             p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            total.messages,
            total.connected,
            total.errors,
            us(0.5),
            us(0.99),
            total.histogram.max() as f64 / 1000.0
        );
    }
    if total.connected == 0 {
        std::process::exit(1);
    }
}

/// Latency histogram in nanoseconds, 1 ns to 60 s, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// One client thread: connect `count` connections, meet the others at `barrier`, then run the load.
fn run_thread(
    addr: SocketAddr,
    count: usize,
    size: usize,
    duration: Duration,
    barrier: &Barrier,
) -> io::Result<ThreadResult> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = LocalSet::new();
    let streams = local.block_on(&runtime, async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..count {
            set.spawn_local(async move {
                let stream = tokio::time::timeout(STALL, TcpStream::connect(addr)).await??;
                stream.set_nodelay(true)?;
                Ok::<_, io::Error>(stream)
            });
        }
        let mut streams = Vec::with_capacity(count);
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined.map_err(io::Error::other).and_then(|r| r) {
                Ok(stream) => streams.push(stream),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(e) = first_error {
            eprintln!(
                "echo_load: {} of {count} connections failed, first: {e}",
                count - streams.len()
            );
        }
        streams
    });
    let failed_connects = count - streams.len();
    barrier.wait();
    let deadline = tokio::time::Instant::now() + duration;
    let histogram = Rc::new(RefCell::new(new_histogram()));
    let connected = streams.len();
    let (messages, errors) = local.block_on(&runtime, async {
        let mut set = tokio::task::JoinSet::new();
        for stream in streams {
            set.spawn_local(ping_pong(stream, size, deadline, Rc::clone(&histogram)));
        }
        let (mut messages, mut errors) = (0, 0);
        while let Some(joined) = set.join_next().await {
            let (count, failed) = joined.unwrap_or((0, true));
            messages += count;
            errors += usize::from(failed);
        }
        (messages, errors)
    });
    let histogram = Rc::try_unwrap(histogram)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| rc.borrow().clone());
    Ok(ThreadResult {
        connected,
        errors: errors + failed_connects,
        messages,
        histogram,
        finished: Instant::now(),
    })
}

/// Round trips on one connection until `deadline`; returns the completed count and whether it failed.
async fn ping_pong(
    mut stream: TcpStream,
    size: usize,
    deadline: tokio::time::Instant,
    histogram: Rc<RefCell<Histogram<u64>>>,
) -> (u64, bool) {
    let message = vec![b'x'; size];
    let mut reply = vec![0; size];
    let mut count = 0;
    loop {
        let sent = Instant::now();
        if tokio::time::Instant::from_std(sent) >= deadline {
            return (count, false);
        }
        let round_trip = async {
            stream.write_all(&message).await?;
            stream.read_exact(&mut reply).await
        };
        match tokio::time::timeout(STALL, round_trip).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return (count, true),
        }
        let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.borrow_mut().saturating_record(nanos.max(1));
        count += 1;
    }
}

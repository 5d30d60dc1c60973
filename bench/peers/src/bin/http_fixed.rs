//! Fixed-count keep-alive HTTP client for the syscall counts (`strace -c`): sends exactly `-n` GET requests
//! spread over `-c` keep-alive connections (one thread each), reads every response whole, and prints what it
//! did as JSON. wrk cannot stop after a fixed number of requests; this can. A connection the server closes is
//! reopened and counted in `reconnects` (it should stay 0).

#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use iomux_bench_peers::{Args, HttpConnection, get_request};

const USAGE: &str = "usage: http_fixed HOST:PORT [--path /1k.bin] [-c CONNS] [-n REQUESTS]

  --path   path to GET (default /)
  -c       keep-alive connections, one thread each (default 8)
  -n       requests in total (default 20000)";

/// Longest a single connect or response may take.
const STALL: Duration = Duration::from_secs(10);

/// What one connection's thread did.
#[derive(Default)]
struct Tally {
    requests: u64,
    not_ok: u64,
    reconnects: u64,
}

fn main() {
    let mut args = Args::from_env(USAGE);
    let path: String = args.value(&["--path"]).unwrap_or_else(|| "/".into());
    let connections: u64 = args.value(&["-c", "--connections"]).unwrap_or(8);
    let requests: u64 = args.value(&["-n", "--requests"]).unwrap_or(20_000);
    let Some(target) = args.positional() else {
        args.fail("HOST:PORT is required")
    };
    let addr: SocketAddr = match target.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(addr) => addr,
        None => args.fail(&format!("cannot resolve {target:?}")),
    };
    if connections == 0 || requests < connections {
        args.fail("-c must be positive and -n at least -c");
    }
    args.finish();

    let request = get_request(&path);
    let started = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|i| {
            let share = requests / connections + u64::from(i < requests % connections);
            let request = request.clone();
            std::thread::spawn(move || run(addr, &request, share))
        })
        .collect();
    let mut total = Tally::default();
    for handle in handles {
        match handle.join() {
            Ok(Ok(t)) => {
                total.requests += t.requests;
                total.not_ok += t.not_ok;
                total.reconnects += t.reconnects;
            }
            Ok(Err(e)) => {
                eprintln!("http_fixed: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("http_fixed: a client thread panicked");
                std::process::exit(1);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"tool\":\"http_fixed\",\"target\":\"{addr}\",\"path\":\"{path}\",\"connections\":{connections},\
         \"requests\":{},\"not_200\":{},\"reconnects\":{},\"seconds\":{seconds:.6},\"requests_per_sec\":{:.1}}}",
        total.requests,
        total.not_ok,
        total.reconnects,
        total.requests as f64 / seconds.max(1e-9)
    );
}

/// Sends `count` requests on one keep-alive connection, reconnecting if the server closes it.
fn run(addr: SocketAddr, request: &[u8], count: u64) -> io::Result<Tally> {
    let mut tally = Tally::default();
    let mut connection = connect(addr)?;
    while tally.requests < count {
        let response = connection.request(request)?;
        tally.requests += 1;
        tally.not_ok += u64::from(response.status != 200);
        if response.closes && tally.requests < count {
            tally.reconnects += 1;
            connection = connect(addr)?;
        }
    }
    Ok(tally)
}

fn connect(addr: SocketAddr) -> io::Result<HttpConnection> {
    let stream = TcpStream::connect_timeout(&addr, STALL)?;
    stream.set_read_timeout(Some(STALL))?;
    stream.set_write_timeout(Some(STALL))?;
    stream.set_nodelay(true)?;
    Ok(HttpConnection::new(stream))
}

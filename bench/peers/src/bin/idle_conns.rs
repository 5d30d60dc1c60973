//! Idle-connection opener for the memory benchmarks: opens N connections to a server one after another, does
//! one exchange on each (an echo round trip with `--echo BYTES`, or one keep-alive `GET` with `--http PATH`)
//! so the server has accepted it and set up its per-connection state, prints `ready OPEN FAILED` on stdout,
//! then holds them idle until stdin reaches its end or `--hold` seconds pass. Connections are closed with
//! `SO_LINGER` 0 (a reset) so repeated runs do not pile up TIME_WAIT sockets.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use iomux_bench_peers::{Args, HttpConnection, get_request};

const USAGE: &str =
    "usage: idle_conns HOST:PORT [-n COUNT] [--echo BYTES | --http PATH] [--hold SECONDS]

  -n, --count  connections to open (default 10000)
  --echo       do one echo round trip of BYTES on each connection
  --http       send one GET PATH on each connection and read the response (keep-alive)
  --hold       longest time to hold them open (default 120); stdin's end releases them sooner";

/// Longest a single connect or exchange may take.
const STALL: Duration = Duration::from_secs(10);

/// What to do on each connection once it is open.
enum Exchange {
    None,
    Echo(usize),
    Http(Vec<u8>),
}

fn main() {
    let mut args = Args::from_env(USAGE);
    let count: usize = args.value(&["-n", "--count"]).unwrap_or(10_000);
    let echo: Option<usize> = args.value(&["--echo"]);
    let http: Option<String> = args.value(&["--http"]);
    let hold: f64 = args.value(&["--hold"]).unwrap_or(120.0);
    let Some(target) = args.positional() else {
        args.fail("HOST:PORT is required")
    };
    let addr: SocketAddr = match target.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(addr) => addr,
        None => args.fail(&format!("cannot resolve {target:?}")),
    };
    let exchange = match (echo, http) {
        (Some(_), Some(_)) => args.fail("--echo and --http exclude each other"),
        (Some(0), None) => args.fail("--echo needs at least one byte"),
        (Some(n), None) => Exchange::Echo(n),
        (None, Some(path)) => Exchange::Http(get_request(&path)),
        (None, None) => Exchange::None,
    };
    if !(hold > 0.0 && hold <= 3600.0) {
        args.fail("--hold must be within (0, 3600] seconds");
    }
    args.finish();

    let started = Instant::now();
    let mut open = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for _ in 0..count {
        match open_one(addr, &exchange) {
            Ok(stream) => open.push(stream),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("idle_conns: {failed} of {count} connections failed, first: {e}");
    }
    eprintln!(
        "idle_conns: {} open in {:.2} s",
        open.len(),
        started.elapsed().as_secs_f64()
    );
    println!("ready {} {failed}", open.len());

    // Hold until stdin ends (the script closes it) or the hold time is over, whichever is first.
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0; 256];
        let mut stdin = io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = done.send(());
    });
    let _ = wait.recv_timeout(Duration::from_secs_f64(hold));
    for stream in &open {
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }
    drop(open);
    std::process::exit(i32::from(failed > 0));
}

/// Connects and does the exchange; the stream is returned open.
fn open_one(addr: SocketAddr, exchange: &Exchange) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, STALL)?;
    stream.set_read_timeout(Some(STALL))?;
    stream.set_write_timeout(Some(STALL))?;
    match exchange {
        Exchange::None => Ok(stream),
        Exchange::Echo(size) => {
            stream.set_nodelay(true)?;
            let message = vec![b'x'; *size];
            stream.write_all(&message)?;
            let mut reply = vec![0; *size];
            stream.read_exact(&mut reply)?;
            if reply != message {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the echo differs from the message",
                ));
            }
            Ok(stream)
        }
        Exchange::Http(request) => {
            let mut connection = HttpConnection::new(stream);
            let response = connection.request(request)?;
            if response.status != 200 || response.closes {
                return Err(io::Error::other(format!(
                    "status {} (closes: {}), expected a keep-alive 200",
                    response.status, response.closes
                )));
            }
            connection.stream().try_clone()
        }
    }
}

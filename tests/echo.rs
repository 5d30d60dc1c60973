//! End-to-end tests of `iomux echo`: the built command as a child process, for every model × backend,
//! driven by real clients over loopback — the listening line and `SIGTERM`, 1,000 concurrent
//! clients, a slow reader with the server's memory watched, 100 resets with its fds counted, fd
//! exhaustion under `prlimit` with its CPU time watched, select's `FD_SETSIZE`, UDP, workers and usage
//! errors. No speed is asserted.

mod support;

use std::io::{self, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use support::echo::{COMBINATIONS, EchoServer, HANG_GUARD, Launch, connect, round_trip};

/// `for_each_combination!(case_a, case_b)` makes modules `case_a` and `case_b`, each with one
/// `#[test]` per model × backend (`case_a::callback_select`, …, `case_a::threads`) calling
/// `fn case_a(flags: &[&str])` with that combination's `iomux echo` flags.
macro_rules! for_each_combination {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::support::echo::COMBINATIONS;

                #[test]
                fn callback_select() {
                    super::$case(COMBINATIONS[0]);
                }

                #[test]
                fn callback_poll() {
                    super::$case(COMBINATIONS[1]);
                }

                #[test]
                fn callback_epoll() {
                    super::$case(COMBINATIONS[2]);
                }

                #[test]
                fn coroutine_select() {
                    super::$case(COMBINATIONS[3]);
                }

                #[test]
                fn coroutine_poll() {
                    super::$case(COMBINATIONS[4]);
                }

                #[test]
                fn coroutine_epoll() {
                    super::$case(COMBINATIONS[5]);
                }

                #[test]
                fn threads() {
                    super::$case(COMBINATIONS[6]);
                }
            }
        )*
    };
}

for_each_combination!(
    listening_line_then_sigterm_exits_0,
    a_thousand_concurrent_clients,
    a_slow_reader_neither_blocks_others_nor_grows_memory,
    resets_release_every_fd,
    fd_exhaustion_neither_spins_nor_kills_and_recovers,
);

/// `flags` followed by `more`.
fn with<'a>(flags: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    flags.iter().chain(more).copied().collect()
}

/// The model and the backend (`none` for threads) that `flags` ask for.
fn model_and_backend(flags: &[&str]) -> (String, String) {
    let value = |name: &str| {
        flags
            .iter()
            .position(|flag| *flag == name)
            .map(|index| flags[index + 1].to_owned())
    };
    (
        value("--model").expect("--model in the flags"),
        value("--backend").unwrap_or_else(|| "none".to_owned()),
    )
}

/// Deterministic bytes that are not all alike (a linear congruential generator).
fn payload(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

fn listening_line_then_sigterm_exits_0(flags: &[&str]) {
    let server = EchoServer::start(&with(flags, &["--mode", "upper"]));
    let (model, backend) = model_and_backend(flags);
    assert_eq!(
        server.first_line,
        format!(
            "iomux echo: listening on tcp://{} (backend {backend}, model {model}, workers 1)",
            server.address
        )
    );
    assert_eq!(server.address.ip().to_string(), "127.0.0.1");
    let mut client = server.connect();
    assert_eq!(
        round_trip(&mut client, b"abc\x00\xffxyz"),
        b"ABC\x00\xffXYZ"
    );
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "stderr: {stderr}");
    // The connection was closed on the way out.
    let mut buffer = [0; 8];
    match client.read(&mut buffer) {
        Ok(0) => {}
        Ok(read) => panic!("read {read} bytes from a stopped server"),
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
    }
}

fn a_thousand_concurrent_clients(flags: &[&str]) {
    const CLIENTS: usize = 1000;
    // The clients' fds are this process's; the server, a child, holds only its own side (so select
    // stays below FD_SETSIZE: its own ten or so fds and the 1,000 connections).
    iomux::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    let server = EchoServer::start(&with(flags, &["--mode", "upper"]));
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    for (index, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("client {index:04}\n").as_bytes())
            .expect("send");
    }
    for (index, client) in clients.iter_mut().enumerate() {
        let mut reply = [0; 12];
        client
            .read_exact(&mut reply)
            .unwrap_or_else(|error| panic!("client {index}: {error}"));
        assert_eq!(reply, format!("CLIENT {index:04}\n").as_bytes());
    }
    // All of them are open at once in the server.
    assert!(
        server.fd_count() > CLIENTS,
        "the server holds {} fds with {CLIENTS} clients connected",
        server.fd_count()
    );
    // And a second round on every connection.
    for client in &mut clients {
        assert_eq!(round_trip(client, b"again"), b"AGAIN");
    }
}

fn a_slow_reader_neither_blocks_others_nor_grows_memory(flags: &[&str]) {
    const LEN: usize = 32 << 20;
    /// A server buffering what the slow client sends would grow by up to 32 MiB; one that stops
    /// reading it holds one read's worth.
    const MAX_GROWTH_KIB: u64 = 16 * 1024;
    let server = EchoServer::start(flags);
    let mut other = server.connect();
    let mut slow = server.connect();
    assert_eq!(round_trip(&mut other, b"warm up"), b"warm up");
    assert_eq!(round_trip(&mut slow, b"warm up"), b"warm up");
    let baseline = server.rss_kib();

    let sent = Arc::new(payload(LEN));
    let mut writer = slow.try_clone().unwrap();
    let to_send = Arc::clone(&sent);
    let writing = thread::spawn(move || {
        for chunk in to_send.chunks(1 << 20) {
            writer.write_all(chunk).expect("the slow client sends");
        }
    });

    // The slow client reads nothing for a while; the other one's round trips go on meanwhile.
    let quiet_until = Instant::now() + Duration::from_secs(1);
    let mut trips = 0;
    while Instant::now() < quiet_until {
        assert_eq!(round_trip(&mut other, b"ping"), b"ping");
        trips += 1;
    }
    assert!(trips > 0);
    let grown = server.rss_kib().saturating_sub(baseline);
    assert!(
        grown < MAX_GROWTH_KIB,
        "the server grew by {grown} KiB while a client sent without reading"
    );

    // Now it reads everything back, while its writer finishes.
    let mut received = 0;
    let mut buffer = vec![0; 1 << 16];
    while received < LEN {
        let read = slow.read(&mut buffer).expect("the slow client reads");
        assert_ne!(read, 0, "the server closed after {received} bytes");
        assert!(
            buffer[..read] == sent[received..received + read],
            "the echo differs from what was sent at byte {received}"
        );
        received += read;
    }
    writing.join().expect("the writer");
    assert_eq!(round_trip(&mut other, b"still here"), b"still here");
    let grown = server.rss_kib().saturating_sub(baseline);
    assert!(
        grown < MAX_GROWTH_KIB,
        "the server grew by {grown} KiB after echoing 32 MiB to a slow client"
    );
}

/// Resets `stream` (`SO_LINGER` 0, then close: the kernel sends RST instead of FIN).
fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

fn resets_release_every_fd(flags: &[&str]) {
    let server = EchoServer::start(flags);
    let baseline = server.fd_count();
    {
        let mut client = server.connect();
        assert_eq!(round_trip(&mut client, b"hello"), b"hello");
    }
    server.wait_for_fd_count(baseline);
    let bulk = payload(1 << 20);
    for index in 0..100 {
        let mut client = server.connect();
        match index % 3 {
            // Reset in the middle of an exchange.
            0 => assert_eq!(round_trip(&mut client, b"hello"), b"hello"),
            // Reset while the server has output waiting: send a lot and read nothing.
            1 => {
                client.set_nonblocking(true).unwrap();
                let mut sent = 0;
                while sent < bulk.len() {
                    match client.write(&bulk[sent..]) {
                        Ok(written) => sent += written,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => panic!("send: {error}"),
                    }
                }
            }
            // Reset before sending anything.
            _ => {}
        }
        reset(client);
    }
    // Every connection's fd is closed again.
    server.wait_for_fd_count(baseline);
    let mut client = server.connect();
    assert_eq!(round_trip(&mut client, b"after"), b"after");
}

fn fd_exhaustion_neither_spins_nor_kills_and_recovers(flags: &[&str]) {
    /// The server's fd limit: its own dozen fds and a few dozen connections.
    const LIMIT: u32 = 40;
    /// More clients than it has fds for; the kernel queues the rest in the listen backlog.
    const CLIENTS: usize = 60;
    /// How long the exhausted server is watched, and the most CPU time it may use meanwhile.
    const WINDOW: Duration = Duration::from_secs(3);
    const MAX_CPU: Duration = Duration::from_secs(1);

    let server = EchoServer::start_with(Launch::FdLimit(LIMIT), flags);
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    server.wait_for_stderr("accept failed");
    assert!(
        server.stderr().contains("Too many open files"),
        "stderr: {}",
        server.stderr()
    );
    // Out of fds with connections waiting: it must pause, not spin on accept.
    let before = server.cpu_time();
    thread::sleep(WINDOW);
    let used = server.cpu_time().saturating_sub(before);
    assert!(
        used < MAX_CPU,
        "the server used {used:?} of CPU in {WINDOW:?} while out of fds"
    );
    // The connections it accepted (the first ones: the backlog is first in, first out) are served.
    assert_eq!(round_trip(&mut clients[0], b"served"), b"served");
    // Free its fds: it closes its side of every connection, accepts the waiting ones and recovers.
    drop(clients);
    server.wait_for_stderr("accepting again");
    let mut client = server.connect();
    assert_eq!(round_trip(&mut client, b"recovered"), b"recovered");
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

mod select_fd_setsize {
    #[test]
    fn callback() {
        super::select_closes_and_logs_connections_above_fd_setsize("callback");
    }

    #[test]
    fn coroutine() {
        super::select_closes_and_logs_connections_above_fd_setsize("coroutine");
    }
}

/// With every fd number from 20 to 1023 taken before it starts, the select server's own fds take the
/// numbers below 20, its first connections the rest of them, and the next ones 1024 and above.
fn select_closes_and_logs_connections_above_fd_setsize(model: &'static str) {
    iomux::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    let server = EchoServer::start_with(
        Launch::FdsFilledFrom(20),
        &["--model", model, "--backend", "select", "--mode", "upper"],
    );
    let mut served = Vec::new();
    let mut refused = 0;
    for index in 0..40 {
        let mut client = server.connect();
        let message = format!("client {index:02}");
        let mut reply = vec![0; message.len()];
        let exchanged = client
            .write_all(message.as_bytes())
            .and_then(|()| client.read_exact(&mut reply));
        match exchanged {
            Ok(()) => {
                assert_eq!(reply, message.to_uppercase().as_bytes());
                served.push(client);
            }
            // Closed by the server: end of stream or a reset.
            Err(_) => refused += 1,
        }
    }
    assert!(!served.is_empty(), "no connection was served");
    assert!(refused > 0, "no connection got an fd at or above 1024");
    let stderr = server.wait_for_stderr("FD_SETSIZE");
    assert!(
        stderr.contains("is at or above select's limit of 1024"),
        "stderr: {stderr}"
    );
    // Every connection below the limit is still served.
    for client in &mut served {
        assert_eq!(round_trip(client, b"still"), b"STILL");
    }
    // Once they close, their numbers are free again and new connections are served.
    drop(served);
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let mut client = server.connect();
        let mut reply = [0; 5];
        let exchanged = client
            .write_all(b"again")
            .and_then(|()| client.read_exact(&mut reply));
        if exchanged.is_ok() {
            assert_eq!(&reply, b"AGAIN");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection was served after the low fds were freed"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_stops_with_status_0_while_clients_are_connected() {
    let server = EchoServer::start(&["--model", "coroutine", "--workers", "2"]);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for client in &mut clients {
        assert_eq!(round_trip(client, b"hi"), b"hi");
    }
    server.signal("INT");
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("SIGINT: stopping"), "stderr: {stderr}");
}

#[test]
fn udp_listening_line_and_datagrams() {
    for flags in COMBINATIONS {
        let server = EchoServer::start(&with(flags, &["--udp", "--mode", "upper"]));
        let (model, backend) = model_and_backend(flags);
        assert_eq!(
            server.first_line,
            format!(
                "iomux echo: listening on udp://{} (backend {backend}, model {model}, workers 1)",
                server.address
            )
        );
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut reply = [0; 64];
        let mut answered = None;
        for _ in 0..5 {
            socket.send_to(b"datagram", server.address).unwrap();
            if let Ok((read, from)) = socket.recv_from(&mut reply) {
                answered = Some((reply[..read].to_vec(), from));
                break;
            }
        }
        assert_eq!(
            answered,
            Some((b"DATAGRAM".to_vec(), server.address)),
            "{flags:?}"
        );
        server.signal("TERM");
        assert_eq!(server.wait_exit().0.code(), Some(0), "{flags:?}");
    }
}

#[test]
fn workers_0_means_one_per_core() {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    for model in ["callback", "coroutine"] {
        let server = EchoServer::start(&["--model", model, "--workers", "0"]);
        assert!(
            server
                .first_line
                .ends_with(&format!("model {model}, workers {cores})")),
            "{}",
            server.first_line
        );
        let mut clients: Vec<TcpStream> = (0..8).map(|_| server.connect()).collect();
        for client in &mut clients {
            assert_eq!(round_trip(client, b"spread"), b"spread");
        }
    }
}

#[test]
fn ipv6_listening_line() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: IPv6 loopback (::1) is not configured on this host");
        return;
    }
    let server = EchoServer::start(&["--bind", "::1"]);
    assert!(
        server
            .first_line
            .starts_with("iomux echo: listening on tcp://[::1]:"),
        "{}",
        server.first_line
    );
    let mut client = connect(server.address);
    assert_eq!(round_trip(&mut client, b"six"), b"six");
}

/// Runs `iomux echo ARGS…` to its end (it must end by itself: a usage error).
fn run_to_end(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iomux"))
        .arg("echo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iomux echo");
    let deadline = Instant::now() + HANG_GUARD;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("iomux echo {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect the output")
}

#[test]
fn usage_errors_exit_2() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--model", "threads", "--backend", "epoll"],
            "takes no --backend",
        ),
        (
            &["--model", "threads", "--backend", "auto"],
            "takes no --backend",
        ),
        (
            &["--model", "threads", "--workers", "2"],
            "takes no --workers",
        ),
        (&["--mode", "shout"], "invalid value 'shout'"),
        (&["--bind", "localhost"], "invalid value 'localhost'"),
    ];
    for (args, message) in cases {
        let output = run_to_end(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_port_in_use_is_an_error_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = run_to_end(&["--port", &port]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "iomux: echo server (callback model, epoll backend): cannot listen on tcp://127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
}

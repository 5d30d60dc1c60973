//! The echo server in-process, for every model × backend, over real loopback sockets: echo and upper,
//! every byte value, an 8 MiB payload written while reading, half-close (also arriving with the last
//! message), IPv6, UDP, two workers sharing a port, and stopping. The cases that watch the server's
//! fds, memory and CPU run it as a child process, in the root `tests/echo.rs`.

#[path = "util/mod.rs"]
#[allow(dead_code)] // shared with the other suites, which use the rest
mod util;

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use iomux::echo::{Config, Error, Mode, Model, Server};
use iomux::selector::BackendKind;
use sha2::{Digest, Sha256};

/// The longest any read or write may block before the case fails: generous, because the machine is
/// shared and slow; it only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// `for_each_model!(case_a, case_b)` makes modules `case_a` and `case_b`, each with one `#[test]` per
/// model and backend (`case_a::callback_epoll`, …, `case_a::threads`) calling `fn case_a(Config)`
/// with that model and backend and port 0.
macro_rules! for_each_model {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use iomux::echo::Model;
                use iomux::selector::BackendKind;

                #[test]
                fn callback_select() {
                    super::$case(super::config(Model::Callback, Some(BackendKind::Select)));
                }

                #[test]
                fn callback_poll() {
                    super::$case(super::config(Model::Callback, Some(BackendKind::Poll)));
                }

                #[test]
                fn callback_epoll() {
                    super::$case(super::config(Model::Callback, Some(BackendKind::Epoll)));
                }

                #[test]
                fn coroutine_select() {
                    super::$case(super::config(Model::Coroutine, Some(BackendKind::Select)));
                }

                #[test]
                fn coroutine_poll() {
                    super::$case(super::config(Model::Coroutine, Some(BackendKind::Poll)));
                }

                #[test]
                fn coroutine_epoll() {
                    super::$case(super::config(Model::Coroutine, Some(BackendKind::Epoll)));
                }

                #[test]
                fn threads() {
                    super::$case(super::config(Model::Threads, None));
                }
            }
        )*
    };
}

for_each_model!(
    echo_and_upper,
    every_byte_value_comes_back,
    an_8_mib_payload_written_while_reading_comes_back_whole,
    half_close_gets_everything_back_then_end_of_stream,
    a_message_and_end_of_stream_arriving_together,
    ipv6_loopback,
    udp_datagrams,
    two_workers_share_the_port,
    stop_closes_connections_and_join_succeeds,
);

/// The configuration of one test: `model` on `backend`, on 127.0.0.1 port 0.
fn config(model: Model, backend: Option<BackendKind>) -> Config {
    Config {
        port: 0,
        model,
        backend,
        ..Config::default()
    }
}

#[track_caller]
fn start(config: &Config) -> Server {
    Server::start(config).unwrap_or_else(|error| panic!("starting {config:?}: {error}"))
}

/// A blocking client connection whose reads and writes fail after [`HANG_GUARD`].
#[track_caller]
fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect to the echo server");
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Sends `message` and reads back exactly as many bytes.
#[track_caller]
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("send");
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply).expect("read the reply");
    reply
}

fn echo_and_upper(config: Config) {
    let echo = start(&config);
    let upper = start(&Config {
        mode: Mode::Upper,
        ..config.clone()
    });
    assert_eq!(echo.model(), config.model);
    assert_eq!(echo.mode(), Mode::Echo);
    assert_eq!(upper.mode(), Mode::Upper);
    assert_eq!(echo.protocol(), "tcp");
    assert_eq!(
        echo.backend(),
        config.backend,
        "threads has no backend; the others report theirs"
    );
    let mut client = connect(echo.local_addr());
    assert_eq!(
        round_trip(&mut client, b"Hello, world\n"),
        b"Hello, world\n"
    );
    assert_eq!(round_trip(&mut client, b"again"), b"again");
    let mut client = connect(upper.local_addr());
    assert_eq!(
        round_trip(&mut client, "Hello, wörld_sb\n".as_bytes()),
        "HELLO, WöRLD_SB\n".as_bytes()
    );
}

fn every_byte_value_comes_back(config: Config) {
    let every: Vec<u8> = (0..=255).cycle().take(256 * 16).collect();
    for mode in [Mode::Echo, Mode::Upper] {
        let server = start(&Config {
            mode,
            ..config.clone()
        });
        let mut client = connect(server.local_addr());
        let mut expected = every.clone();
        mode.apply(&mut expected);
        assert_eq!(round_trip(&mut client, &every), expected, "{mode}");
        if mode == Mode::Upper {
            assert_eq!(expected[usize::from(b'a')], b'A');
            assert_eq!(expected[0xe9], 0xe9, "bytes above ASCII are unchanged");
        }
    }
}

/// Deterministic bytes that are not all alike (a linear congruential generator).
fn payload(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

fn an_8_mib_payload_written_while_reading_comes_back_whole(config: Config) {
    // 1 MiB under valgrind, where 8 MiB takes minutes per model.
    let len: usize = if util::small_scale() {
        1 << 20
    } else {
        8 << 20
    };
    let server = start(&Config {
        mode: Mode::Upper,
        ..config
    });
    let mut client = connect(server.local_addr());
    let sent = payload(len);
    let mut expected = sent.clone();
    Mode::Upper.apply(&mut expected);
    let mut writer = client.try_clone().unwrap();
    let writing = thread::spawn(move || {
        // Odd-sized writes, so the server sees reads of every length.
        for chunk in sent.chunks(100_003) {
            writer.write_all(chunk).expect("send the payload");
        }
    });
    let mut received = Vec::with_capacity(len);
    let mut buffer = vec![0; 64 * 1024];
    while received.len() < len {
        let read = client.read(&mut buffer).expect("read the echo");
        assert_ne!(read, 0, "the server closed after {} bytes", received.len());
        received.extend_from_slice(&buffer[..read]);
    }
    writing.join().unwrap();
    assert_eq!(received.len(), len);
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(&expected),
        "the payload came back altered"
    );
}

fn half_close_gets_everything_back_then_end_of_stream(config: Config) {
    const LEN: usize = 1 << 20;
    let server = start(&config);
    let mut client = connect(server.local_addr());
    let sent = payload(LEN);
    let mut writer = client.try_clone().unwrap();
    let writing = thread::spawn(move || {
        writer.write_all(&sent).expect("send");
        // Half-close: the server sees end of stream but can still answer.
        writer
            .shutdown(Shutdown::Write)
            .expect("shut down the write side");
        sent
    });
    let mut received = Vec::new();
    // Ends only when the server closes the connection after sending everything back.
    client.read_to_end(&mut received).expect("read to the end");
    let sent = writing.join().unwrap();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the echo differs from what was sent");
}

/// A message followed at once by a half-close usually reaches the server's socket before its first
/// read: that read is short and the end of stream is already queued behind it. An edge-triggered
/// server must read on to it, or it waits for an event that never comes.
fn a_message_and_end_of_stream_arriving_together(config: Config) {
    let server = start(&config);
    for round in 0..50 {
        let mut client = connect(server.local_addr());
        let message = format!("message {round}");
        client.write_all(message.as_bytes()).expect("send");
        client
            .shutdown(Shutdown::Write)
            .expect("shut down the write side");
        let mut reply = Vec::new();
        // A server that missed the end of stream never closes: the read times out.
        client
            .read_to_end(&mut reply)
            .expect("read to the end of stream");
        assert_eq!(reply, message.as_bytes(), "round {round}");
    }
}

fn ipv6_loopback(config: Config) {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("skipped: IPv6 loopback (::1) is not configured on this host");
        return;
    }
    let server = start(&Config {
        bind: Ipv6Addr::LOCALHOST.into(),
        mode: Mode::Upper,
        ..config.clone()
    });
    assert!(server.local_addr().is_ipv6());
    let mut client = connect(server.local_addr());
    assert_eq!(round_trip(&mut client, b"over ipv6"), b"OVER IPV6");
    let udp = start(&Config {
        bind: Ipv6Addr::LOCALHOST.into(),
        udp: true,
        ..config
    });
    let socket = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    assert_eq!(datagram_round_trip(&socket, udp.local_addr(), b"v6"), b"v6");
}

/// Sends `message` to `server` and returns the reply, resending (UDP may drop) up to 5 times.
#[track_caller]
fn datagram_round_trip(socket: &UdpSocket, server: SocketAddr, message: &[u8]) -> Vec<u8> {
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buffer = vec![0; 70_000];
    for _ in 0..5 {
        socket.send_to(message, server).expect("send a datagram");
        match socket.recv_from(&mut buffer) {
            Ok((read, from)) => {
                assert_eq!(from, server, "the reply comes from the server's address");
                return buffer[..read].to_vec();
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(error) => panic!("receiving the reply: {error}"),
        }
    }
    panic!(
        "no reply to a {}-byte datagram after 5 tries",
        message.len()
    );
}

fn udp_datagrams(config: Config) {
    let server = start(&Config {
        udp: true,
        mode: Mode::Upper,
        ..config
    });
    assert_eq!(server.protocol(), "udp");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = server.local_addr();
    assert_eq!(datagram_round_trip(&socket, address, b"ping"), b"PING");
    assert_eq!(datagram_round_trip(&socket, address, b""), b"");
    let every: Vec<u8> = (0..=255).collect();
    let mut expected = every.clone();
    Mode::Upper.apply(&mut expected);
    assert_eq!(datagram_round_trip(&socket, address, &every), expected);
    // The largest UDP payload over IPv4: one datagram each way, whole.
    let largest = payload(65_507);
    let mut expected = largest.clone();
    Mode::Upper.apply(&mut expected);
    assert!(datagram_round_trip(&socket, address, &largest) == expected);
    // Each datagram is answered on its own, to its own sender.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(datagram_round_trip(&other, address, b"two"), b"TWO");
}

fn two_workers_share_the_port(config: Config) {
    let config = Config {
        workers: 2,
        ..config
    };
    if config.model == Model::Threads {
        assert!(matches!(
            Server::start(&config),
            Err(Error::WorkersWithThreads { workers: 2 })
        ));
        return;
    }
    let server = start(&config);
    assert_eq!(server.workers(), 2);
    // The kernel spreads connections over both listeners; every one must be served.
    let mut clients: Vec<TcpStream> = (0..32).map(|_| connect(server.local_addr())).collect();
    for (index, client) in clients.iter_mut().enumerate() {
        let message = format!("client {index}");
        assert_eq!(round_trip(client, message.as_bytes()), message.as_bytes());
    }
    let udp = start(&Config {
        udp: true,
        ..config
    });
    assert_eq!(udp.workers(), 2);
    for index in 0..8 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let message = format!("datagram {index}");
        assert_eq!(
            datagram_round_trip(&socket, udp.local_addr(), message.as_bytes()),
            message.as_bytes()
        );
    }
}

fn stop_closes_connections_and_join_succeeds(config: Config) {
    let server = start(&config);
    assert!(!server.is_finished());
    let mut client = connect(server.local_addr());
    assert_eq!(round_trip(&mut client, b"before"), b"before");
    let address = server.local_addr();
    let started = Instant::now();
    server.stop();
    server.join().expect("a stopped server joins without error");
    assert!(
        started.elapsed() < HANG_GUARD,
        "stopping took {:?}",
        started.elapsed()
    );
    // The connection was closed by the server: end of stream, or a reset.
    let mut buffer = [0; 16];
    match client.read(&mut buffer) {
        Ok(0) => {}
        Ok(read) => panic!("read {read} bytes from a stopped server"),
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
    }
    // And nothing listens any more.
    assert!(
        TcpStream::connect(address).is_err(),
        "the listener is still open after stop"
    );
}

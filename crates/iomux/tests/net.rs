//! Async sockets on every backend over real loopback sockets: TCP echo with 100 concurrent connections,
//! an 8 MiB payload written while reading, IPv6, UDP, half-close, resets, `futures-lite` helpers, fd
//! reuse, and the thread-per-core workers sharing a port.

#[path = "util/mod.rs"]
#[allow(dead_code)] // shared with the other suites, which use the rest
mod util;

#[path = "util/runtime.rs"]
#[macro_use]
mod support;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use iomux::net::{TcpListener, TcpStream, UdpSocket, is_out_of_resources};
use iomux::runtime::{BackendKind, JoinHandle, join_all, sleep, spawn, workers};
use sha2::{Digest, Sha256};
use support::runtime;

for_each_backend!(
    echo_with_100_concurrent_connections,
    an_8_mib_payload_written_while_reading_comes_back_whole,
    ipv6_loopback_echo,
    udp_send_to_and_recv_from,
    half_close_delivers_everything_then_end_of_stream,
    a_reset_by_the_peer_is_an_error_not_a_panic,
    futures_lite_helpers_work_on_tcp_stream,
    split_halves_work_in_separate_tasks,
    connecting_to_a_closed_port_is_refused,
    dropped_sockets_free_their_registration_for_reused_fds,
    two_workers_share_one_port,
);

for_each_backend!(
    exclusive: accept_survives_fd_exhaustion_and_recovers,
    accepted_fds_above_fd_setsize,
);

/// Starts an echo server on `address` (port 0); returns its address and accept-loop task.
fn echo_server(address: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(address).unwrap();
    let local = listener.local_addr().unwrap();
    let server = spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            spawn(echo(stream));
        }
    });
    (local, server)
}

async fn echo(mut stream: TcpStream) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if stream.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn echo_with_100_concurrent_connections(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let (address, server) = echo_server("127.0.0.1:0");
        let clients = (0..100).map(|client| {
            spawn(async move {
                let mut stream = TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                assert_eq!(stream.peer_addr().unwrap(), address);
                for round in 0..5 {
                    let message = format!("client {client} round {round} {}", "x".repeat(client));
                    stream.write_all(message.as_bytes()).await.unwrap();
                    let mut reply = vec![0; message.len()];
                    stream.read_exact(&mut reply).await.unwrap();
                    assert_eq!(reply, message.as_bytes());
                }
                client
            })
        });
        let done: Vec<usize> = join_all(clients)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(done, (0..100).collect::<Vec<_>>());
        server.abort();
    });
}

fn an_8_mib_payload_written_while_reading_comes_back_whole(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let (address, server) = echo_server("127.0.0.1:0");
        // 1 MiB under valgrind: still more than both send buffers hold.
        let size: u32 = if util::small_scale() {
            1 << 20
        } else {
            8 << 20
        };
        let payload: Vec<u8> = (0..size)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let stream = TcpStream::connect(address).await.unwrap();
        // The server echoes as it reads: unless the client reads while it writes, both send
        // buffers fill and neither side moves.
        let (mut reader, mut writer) = (&stream, &stream);
        let write = async {
            writer.write_all(&payload).await.unwrap();
            writer.close().await.unwrap(); // half-close: the server sees end of stream
        };
        let read = async {
            let mut received = Vec::with_capacity(payload.len());
            reader.read_to_end(&mut received).await.unwrap();
            received
        };
        let ((), received) = zip(write, read).await;
        assert_eq!(received.len(), payload.len());
        assert_eq!(Sha256::digest(&received), Sha256::digest(&payload));
        server.abort();
    });
}

/// Whether `::1` is configured here (it is not in some containers).
fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn ipv6_loopback_echo(kind: BackendKind) {
    if !has_ipv6_loopback() {
        eprintln!("note: ::1 is not configured on this host; skipping the IPv6 case");
        return;
    }
    let runtime = runtime(kind);
    runtime.block_on(async {
        let (address, server) = echo_server("[::1]:0");
        assert!(address.is_ipv6());
        let mut stream = TcpStream::connect(address).await.unwrap();
        assert!(stream.local_addr().unwrap().is_ipv6());
        stream.write_all(b"over ipv6").await.unwrap();
        let mut reply = [0; 9];
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"over ipv6");

        let a = UdpSocket::bind("[::1]:0").unwrap();
        let b = UdpSocket::bind("[::1]:0").unwrap();
        a.send_to(b"datagram", b.local_addr().unwrap())
            .await
            .unwrap();
        let mut buffer = [0; 64];
        let (len, from) = b.recv_from(&mut buffer).await.unwrap();
        assert_eq!(
            (&buffer[..len], from),
            (&b"datagram"[..], a.local_addr().unwrap())
        );
        server.abort();
    });
}

fn udp_send_to_and_recv_from(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_address = server.local_addr().unwrap();
        let echo = spawn(async move {
            let mut buffer = [0; 2048];
            for _ in 0..20 {
                let (len, from) = server.recv_from(&mut buffer).await.unwrap();
                server.send_to(&buffer[..len], from).await.unwrap();
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for round in 0..20u8 {
            let datagram = vec![round; 1 + usize::from(round) * 50];
            assert_eq!(
                client.send_to(&datagram, server_address).await.unwrap(),
                datagram.len()
            );
            let mut buffer = [0; 2048];
            let (len, from) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(from, server_address);
            assert_eq!(&buffer[..len], &datagram[..]);
        }
        echo.await.unwrap();
    });
}

fn half_close_delivers_everything_then_end_of_stream(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // The server reads the whole request (to end of stream), then answers and closes.
        let server = spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            stream.read_to_end(&mut request).await.unwrap();
            let answer = format!("got {} bytes", request.len());
            stream.write_all(answer.as_bytes()).await.unwrap();
            request
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        let request = vec![b'q'; 100_000];
        client.write_all(&request).await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "got 100000 bytes");
        assert_eq!(server.await.unwrap(), request);
        // Reading again after end of stream keeps saying end of stream.
        let mut more = [0; 8];
        assert_eq!(client.read(&mut more).await.unwrap(), 0);
    });
}

fn a_reset_by_the_peer_is_an_error_not_a_panic(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = zip(TcpStream::connect(address), listener.accept()).await;
        let mut client = client.unwrap();
        let (server_side, _) = accepted.unwrap();
        // Linger 0: close sends RST instead of FIN.
        socket2::SockRef::from(&server_side)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server_side);
        let mut buffer = [0; 16];
        let error = client.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
        // Writing to the dead connection fails too (EPIPE, no SIGPIPE), again without a panic.
        let mut write_failed = false;
        for _ in 0..10 {
            if client.write_all(b"anyone there?").await.is_err() {
                write_failed = true;
                break;
            }
            sleep(Duration::from_millis(5)).await;
        }
        assert!(write_failed, "writes to a reset connection keep succeeding");
    });
}

fn futures_lite_helpers_work_on_tcp_stream(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (mut stream, peer) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            // Vectored write through AsyncWriteExt::write_vectored-backed write_all.
            stream.write_all(&all).await.unwrap();
            stream.flush().await.unwrap();
            stream.close().await.unwrap();
            (all.len(), peer)
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        let local = client.local_addr().unwrap();
        let message: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        client.write_all(&message).await.unwrap();
        client.close().await.unwrap();
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
        assert_eq!(server.await.unwrap(), (message.len(), local));
    });
}

fn split_halves_work_in_separate_tasks(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let (address, server) = echo_server("127.0.0.1:0");
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        assert_eq!(reader.stream().peer_addr().unwrap(), address);
        let total = 1_000_000;
        let writing = spawn(async move {
            let chunk = [0xa5u8; 10_000];
            for _ in 0..total / chunk.len() {
                writer.write_all(&chunk).await.unwrap();
            }
            writer.close().await.unwrap();
        });
        let reading = spawn(async move {
            let mut received = Vec::new();
            reader.read_to_end(&mut received).await.unwrap();
            received
        });
        writing.await.unwrap();
        let received = reading.await.unwrap();
        assert_eq!(received.len(), total);
        assert!(received.iter().all(|&byte| byte == 0xa5));
        server.abort();
    });
}

fn connecting_to_a_closed_port_is_refused(kind: BackendKind) {
    let runtime = runtime(kind);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    runtime.block_on(async {
        let error = TcpStream::connect(closed).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    });
    // Outside a runtime, creating a socket is a typed error, not a panic.
    let error = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(
        error.to_string().contains("needs a running iomux runtime"),
        "{error}"
    );
}

fn dropped_sockets_free_their_registration_for_reused_fds(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let (address, server) = echo_server("127.0.0.1:0");
        // Each closed stream's fd number is reused by the next: a registration left behind would
        // make the next registration fail (AlreadyRegistered).
        for round in 0..300u32 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(&round.to_be_bytes()).await.unwrap();
            let mut reply = [0; 4];
            stream.read_exact(&mut reply).await.unwrap();
            assert_eq!(u32::from_be_bytes(reply), round);
        }
        server.abort();
    });
}

fn two_workers_share_one_port(kind: BackendKind) {
    let workers = workers::serve("127.0.0.1:0", 2, kind, move |listener| async move {
        assert_eq!(listener.backend(), kind);
        while let Ok((mut stream, _)) = listener.accept().await {
            spawn(async move {
                let name = std::thread::current().name().unwrap_or("?").to_owned();
                let _ = stream.write_all(name.as_bytes()).await;
                let _ = stream.close().await;
            });
        }
    })
    .unwrap();
    assert_eq!(workers.len(), 2);
    let address = workers.local_addr();
    assert_ne!(address.port(), 0);
    let mut served: HashMap<String, usize> = HashMap::new();
    // SO_REUSEPORT spreads connections by a hash of their addresses: with fresh source ports, both
    // workers get some long before 500.
    for _ in 0..500 {
        let mut client = std::net::TcpStream::connect(address).unwrap();
        client.set_read_timeout(Some(util::HANG_GUARD)).unwrap();
        let mut name = String::new();
        client.read_to_string(&mut name).unwrap();
        *served.entry(name).or_default() += 1;
        if served.len() == 2 && served.values().all(|&count| count >= 3) {
            break;
        }
    }
    let mut names: Vec<&String> = served.keys().collect();
    names.sort();
    assert_eq!(names, ["iomux-worker-0", "iomux-worker-1"], "{served:?}");
    let shutdown = workers.shutdown_signal();
    workers.shutdown();
    assert!(shutdown.is_triggered());
    workers.join().unwrap();
    // Stopped: nothing listens on the port any more.
    let refused = std::net::TcpStream::connect(address).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

/// Sets this process's `RLIMIT_NOFILE` with `prlimit(1)`.
#[track_caller]
fn set_nofile_limit(soft: u64, hard: u64) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .expect("running prlimit");
    assert!(status.success(), "prlimit --nofile={soft}:{hard} failed");
}

/// Puts the soft fd limit back when dropped, even if the case fails.
struct RestoreLimit {
    soft: u64,
    hard: u64,
}

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        // Needs no fd, so it works while fds are exhausted; prlimit then sets the exact value.
        iomux::raise_nofile_limit().expect("raising the fd limit back");
        if self.soft < self.hard {
            set_nofile_limit(self.soft, self.hard);
        }
    }
}

fn accept_survives_fd_exhaustion_and_recovers(kind: BackendKind) {
    let runtime = runtime(kind);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // Connections queued in the backlog before the fds run out.
        let mut clients: Vec<std::net::TcpStream> = (0..3)
            .map(|_| std::net::TcpStream::connect(address).unwrap())
            .collect();
        let (soft, hard) = iomux::nofile_limit().unwrap();
        // No case runs beside this one, so every fd below the lowest free number is open: a limit
        // of that number leaves no fd to allocate.
        let lowest_free = File::open("/dev/null").unwrap().as_raw_fd();
        set_nofile_limit(lowest_free as u64, hard);
        let restore = RestoreLimit { soft, hard };

        let error = listener.accept().await.unwrap_err();
        assert!(is_out_of_resources(&error), "{error}");
        assert_eq!(error.raw_os_error(), Some(libc::EMFILE));
        // The listener is still open and registered; until fds are freed it says the same.
        sleep(Duration::from_millis(10)).await;
        let again = listener.accept().await.unwrap_err();
        assert!(is_out_of_resources(&again), "{again}");

        // One fd freed: the first queued connection is accepted (its client is gone, which does
        // not matter to accept), with no new event needed.
        drop(clients.remove(0));
        let (first, _) = listener.accept().await.unwrap();
        drop(restore);
        drop(first);
        let (mut second, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, clients[0].local_addr().unwrap());
        second.write_all(b"ok").await.unwrap();
        let mut reply = [0; 2];
        clients[0].read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"ok");
    });
}

fn accepted_fds_above_fd_setsize(kind: BackendKind) {
    iomux::raise_nofile_limit().unwrap();
    let runtime = runtime(kind);
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // Fill every fd number below 1024, so the next ones are at or above select's FD_SETSIZE.
        let mut filler = Vec::new();
        while filler
            .last()
            .is_none_or(|file: &File| file.as_raw_fd() < 1023)
        {
            filler.push(File::open("/dev/null").unwrap());
        }
        let mut client = std::net::TcpStream::connect(address).unwrap();
        client.set_read_timeout(Some(util::HANG_GUARD)).unwrap();
        assert!(client.as_raw_fd() >= 1024);
        if kind == BackendKind::Select {
            let error = listener.accept().await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            let inner = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<iomux::selector::Error>());
            assert!(
                matches!(
                    inner,
                    Some(iomux::selector::Error::FdTooLarge { fd, limit: 1024, .. }) if *fd >= 1024
                ),
                "{error:?}"
            );
            // That connection was closed, not leaked.
            let closed = client.read(&mut [0; 1]);
            assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        } else {
            let (mut stream, _) = listener.accept().await.unwrap();
            assert!(stream.as_raw_fd() >= 1024);
            stream.write_all(b"high").await.unwrap();
            let mut reply = [0; 4];
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"high");
        }
        // The listener keeps serving once low fd numbers are free again.
        drop(filler);
        let mut next = std::net::TcpStream::connect(address).unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"served").await.unwrap();
        let mut reply = [0; 6];
        next.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"served");
    });
}

//! Tests of the seeds' programs in `examples/`: each example's source is compiled in here as a module,
//! its server started on loopback port 0 in a background thread, and driven by real TCP clients —
//! replies, binary data, clients served side by side, half-close, urgent data, large payloads.
// Each example is a standalone program with its own `mod common;`, so `examples/common/mod.rs` is
// compiled in once per example here (and once more for `start`'s listener).
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/coroutine_server.rs"]
mod coroutine_server;
#[allow(dead_code)]
#[path = "../examples/epoll_edge_server.rs"]
mod epoll_edge_server;
#[allow(dead_code)]
#[path = "../examples/poll_server.rs"]
mod poll_server;
#[allow(dead_code)]
#[path = "../examples/select_ok_server.rs"]
mod select_ok_server;
#[allow(dead_code)]
#[path = "../examples/select_queue_echo.rs"]
mod select_queue_echo;
#[allow(dead_code)]
#[path = "../examples/selectors_upper_server.rs"]
mod selectors_upper_server;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use socket2::SockRef;

/// Generous: no read in these tests should come near it.
const READ_GUARD: Duration = Duration::from_secs(30);

/// Runs `serve` on a fresh listener (the examples' own, from `examples/common`) in a background thread
/// that lives as long as the test binary; returns the address.
fn start(serve: fn(TcpListener) -> io::Result<()>) -> SocketAddr {
    let listener = common::bind(0).expect("bind port 0");
    let address = listener.local_addr().unwrap();
    thread::spawn(move || serve(listener));
    address
}

/// A blocking client with a hang guard on its reads.
fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(READ_GUARD)).unwrap();
    stream
}

/// Sends `input`, shuts the write side and reads everything back until the server closes, writing
/// from a thread so a reply larger than the socket buffers cannot stall the exchange.
fn exchange(address: SocketAddr, input: Vec<u8>) -> Vec<u8> {
    let stream = connect(address);
    let mut writer = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        writer.write_all(&input).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reply = Vec::new();
    (&stream)
        .read_to_end(&mut reply)
        .expect("read until the server closes");
    sending.join().unwrap();
    reply
}

/// Every byte value, twice.
fn binary() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

/// Checks a server that answers each chunk with `OK`: a reply to one message, a second client served
/// while the first stays open, binary input, and the replies to a half-closed client.
fn check_ok_server(address: SocketAddr) {
    let mut idle = connect(address);
    let mut first = connect(address);
    first.write_all(b"hello").unwrap();
    let mut reply = [0; 2];
    first.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"OK");

    // The idle client did not block the other; now it is served too.
    idle.write_all(b"late").unwrap();
    idle.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"OK");

    // Binary input, then end of stream: one OK per chunk the server read, however the bytes were split.
    let input = binary();
    let replies = exchange(address, input.clone());
    assert!(!replies.is_empty() && replies.len() <= 2 * input.len());
    assert!(replies.chunks(2).all(|chunk| chunk == b"OK"), "{replies:?}");

    // Still serving after all that.
    first.write_all(b"again").unwrap();
    first.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"OK");
}

#[test]
fn select_ok_server_answers_ok() {
    check_ok_server(start(select_ok_server::serve));
}

#[test]
fn poll_server_answers_ok() {
    check_ok_server(start(poll_server::serve));
}

#[test]
fn epoll_edge_server_answers_ok() {
    check_ok_server(start(epoll_edge_server::serve));
}

#[test]
fn coroutine_server_answers_ok() {
    check_ok_server(start(coroutine_server::serve));
}

#[test]
fn epoll_edge_server_reads_a_burst_to_the_end() {
    // 256 KiB in one go: many 1024-byte reads on one edge; a server reading once per edge would
    // leave most of it unread and answer far fewer times.
    let address = start(epoll_edge_server::serve);
    let input = vec![b'x'; 256 * 1024];
    let replies = exchange(address, input);
    assert!(replies.chunks(2).all(|chunk| chunk == b"OK"));
    assert!(replies.len() / 2 >= 256, "{} replies", replies.len() / 2);
}

#[test]
fn select_queue_echo_returns_every_byte() {
    let address = start(select_queue_echo::serve);
    assert_eq!(exchange(address, binary()), binary());
    // 8 MiB: far more than the socket buffers and the per-client queue limit.
    let large: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    assert!(exchange(address, large.clone()) == large);
}

#[test]
fn select_queue_echo_reads_urgent_data_in_line() {
    let address = start(select_queue_echo::serve);
    let mut stream = connect(address);
    stream.write_all(b"ab").unwrap();
    // Urgent data puts the socket in select's exceptional set; the seed closes such a client.
    SockRef::from(&stream).send_out_of_band(b"!").unwrap();
    stream.write_all(b"cd").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"ab!cd");
}

#[test]
fn selectors_upper_server_uppercases_only_ascii_letters() {
    let address = start(selectors_upper_server::serve);
    let mut input = b"Hello, world! caf\xc3\xa9 ".to_vec();
    input.extend(binary());
    let expected = input.to_ascii_uppercase();
    assert_eq!(exchange(address, input), expected);
    // Larger than the socket buffers: the rest of each reply waits in the write callback.
    let large: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 256) as u8).collect();
    assert!(exchange(address, large.clone()) == large.to_ascii_uppercase());
}

#[test]
fn selectors_upper_server_serves_clients_side_by_side() {
    let address = start(selectors_upper_server::serve);
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(address)).collect();
    for (index, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("client {index}\n").as_bytes())
            .unwrap();
    }
    for (index, client) in clients.iter_mut().enumerate() {
        let expected = format!("CLIENT {index}\n");
        let mut reply = vec![0; expected.len()];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(reply, expected.as_bytes());
    }
}

#[test]
fn client_sends_its_input_and_prints_every_reply_byte() {
    let address = start(selectors_upper_server::serve);
    let (input, mut input_writer) = io::pipe().unwrap();
    let mut typed = b"hello\nworld\nno newline".to_vec();
    typed.extend(binary());
    let expected = typed.to_ascii_uppercase();
    let typing = thread::spawn(move || input_writer.write_all(&typed));
    let mut printed = Vec::new();
    client::run(connect(address), input, &mut printed).expect("the client runs to the end");
    typing.join().unwrap().unwrap();
    assert_eq!(printed, expected);
}

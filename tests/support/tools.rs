//! Helpers for the end-to-end tests of `iomux client`, `iomux load` and the examples: running the built
//! command with a hang guard (longer than the servers' tests: 120 s), a child killed by PID when its
//! guard drops, and small servers on loopback port 0 (an echo server on iomux's runtime, one that
//! closes every connection at once).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use iomux::net::TcpListener;

use super::process;
use iomux::runtime::{Runtime, sleep, spawn};

/// Generous: a debug build under a loaded machine; no test should come near it.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// A child process, killed (by its PID) and reaped when the guard drops.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        process::stop(&mut self.0);
    }
}

/// What a finished run of the command left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// `iomux` with `args`, its stdio piped, under a [`ChildGuard`].
#[track_caller]
pub fn spawn_iomux(args: &[&str]) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_iomux"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iomux");
    ChildGuard(child)
}

/// Runs `iomux` with `args`, feeding it `stdin` and then end of input; kills it if it outlives
/// [`HANG_GUARD`].
#[track_caller]
pub fn run_iomux(args: &[&str], stdin: &[u8]) -> Output {
    let mut guard = spawn_iomux(args);
    let mut input = guard.0.stdin.take().expect("stdin is piped");
    let input_bytes = stdin.to_vec();
    // Written from a thread: the child may answer before it has read everything.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&input_bytes);
    });
    let mut stdout = guard.0.stdout.take().expect("stdout is piped");
    let mut stderr = guard.0.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).expect("read stdout");
        bytes
    });
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).expect("read stderr");
        text
    });
    let status = wait_bounded(&mut guard.0);
    writer.join().expect("stdin writer");
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Waits for `child`, killing it and failing the test if it outlives [`HANG_GUARD`].
#[track_caller]
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    process::wait_bounded(child, HANG_GUARD)
}

/// Whether the big cases run scaled down: `IOMUX_TEST_SCALE=small`, which `scripts/valgrind.sh` sets
/// because everything runs tens of times slower under valgrind.
pub fn small_scale() -> bool {
    std::env::var_os("IOMUX_TEST_SCALE").is_some_and(|scale| scale == "small")
}

/// Starts a server on iomux's runtime in a background thread, listening on 127.0.0.1 port 0 with a
/// full backlog, running `handle` for each connection in its own task; returns its address. The
/// thread lives as long as the test binary.
fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(iomux::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (sender, address) = mpsc::channel();
    thread::spawn(move || {
        let runtime = Runtime::new().expect("create a runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            sender
                .send(listener.local_addr().expect("local address"))
                .expect("the test waits for the address");
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        spawn(handle(stream));
                    }
                    // Out of fds, most likely: let connections close, then go on.
                    Err(_) => sleep(Duration::from_millis(10)).await,
                }
            }
        })
    });
    address.recv().expect("the server thread sends its address")
}

/// An echo server: every byte back, and the connection closed after the client's end of stream.
pub fn echo_server() -> SocketAddr {
    serve(|stream| async move {
        let _ = futures_lite::io::copy(&stream, &mut &stream).await;
    })
}

/// A server that accepts each connection and closes it at once.
pub fn closing_server() -> SocketAddr {
    serve(|stream| async move { drop(stream) })
}

/// A loopback address nothing listens on: a port the kernel gave a listener that is closed again.
pub fn refused_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

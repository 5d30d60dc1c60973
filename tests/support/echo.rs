//! Helpers of the `iomux echo` end-to-end tests: start the built command as a child process on
//! loopback port 0 (directly, under `prlimit`, or with its fds below 1024 filled) and read the address
//! from its first line — the rest (stderr, signals, stop by PID, `/proc` readings) is
//! [`Process`]'s; and blocking clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::process::{Command, ExitStatus};

use super::process::Process;

pub use super::HANG_GUARD;

/// Every model × backend the server runs in, as `iomux echo` flags.
pub const COMBINATIONS: [&[&str]; 7] = [
    &["--model", "callback", "--backend", "select"],
    &["--model", "callback", "--backend", "poll"],
    &["--model", "callback", "--backend", "epoll"],
    &["--model", "coroutine", "--backend", "select"],
    &["--model", "coroutine", "--backend", "poll"],
    &["--model", "coroutine", "--backend", "epoll"],
    &["--model", "threads"],
];

/// How the child is started.
#[derive(Clone, Copy, Debug)]
pub enum Launch {
    /// `iomux echo …` itself.
    Direct,
    /// Under `prlimit --nofile=N:N` (util-linux, which execs it: same PID), so the server can hold
    /// at most N fds.
    FdLimit(u32),
    /// Through Python, which first fills every fd number from `first` to 1023 (inherited across
    /// `exec`), so the server's own fds take the few numbers below `first` and its connections soon
    /// get numbers at or above select's `FD_SETSIZE`.
    FdsFilledFrom(u32),
}

/// The Python program behind [`Launch::FdsFilledFrom`]: `python3 -c PROGRAM FIRST COMMAND ARGS…`.
const FILL_FDS: &str = "\
import os, sys
first = int(sys.argv[1])
null = os.open('/dev/null', os.O_RDONLY)
for fd in range(first, 1024):
    os.dup2(null, fd, inheritable=True)
if null < first:
    os.close(null)
os.execv(sys.argv[2], sys.argv[2:])
";

/// A running `iomux echo` child, killed by its PID when dropped; the child's own calls (`pid`,
/// `stderr`, `signal`, fd counts, `/proc` readings) are [`Process`]'s.
pub struct EchoServer {
    process: Process,
    /// The address from the first line.
    pub address: SocketAddr,
}

impl Deref for EchoServer {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl EchoServer {
    /// Starts `iomux echo --port 0 ARGS…`.
    #[track_caller]
    pub fn start(args: &[&str]) -> EchoServer {
        EchoServer::start_with(Launch::Direct, args)
    }

    /// Starts `iomux echo --port 0 ARGS…` as `launch` says.
    #[track_caller]
    pub fn start_with(launch: Launch, args: &[&str]) -> EchoServer {
        let iomux = env!("CARGO_BIN_EXE_iomux");
        let mut command = match launch {
            Launch::Direct => Command::new(iomux),
            Launch::FdLimit(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}:{limit}")).arg(iomux);
                command
            }
            Launch::FdsFilledFrom(first) => {
                let mut command = Command::new("python3");
                command
                    .args(["-c", FILL_FDS])
                    .arg(first.to_string())
                    .arg(iomux);
                command
            }
        };
        command.args(["echo", "--port", "0"]).args(args);
        let process = Process::start(&mut command, &format!("iomux echo {args:?}"));
        let address = parse_listening_line(&process.first_line);
        EchoServer { process, address }
    }

    /// A new blocking connection to the server.
    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        connect(self.address)
    }

    /// Waits (at most [`HANG_GUARD`]) for the server to exit, and returns its status and stderr.
    #[track_caller]
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let status = self.process.wait_exit();
        (status, self.process.stderr())
    }
}

/// The address in `iomux echo: listening on tcp://ADDR:PORT (…)` (or `udp://`).
#[track_caller]
pub fn parse_listening_line(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("iomux echo: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let rest = rest
        .strip_prefix("tcp://")
        .or_else(|| rest.strip_prefix("udp://"))
        .unwrap_or_else(|| panic!("no tcp:// or udp:// in {line:?}"));
    let address = rest.split(' ').next().expect("an address");
    address
        .parse()
        .unwrap_or_else(|error| panic!("bad address {address:?} in {line:?}: {error}"))
}

/// A blocking connection whose reads and writes fail after [`HANG_GUARD`].
#[track_caller]
pub fn connect(address: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect(address).unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Sends `message` and reads back exactly as many bytes.
#[track_caller]
pub fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("send");
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply).expect("read the reply");
    reply
}

//! Helpers of the `iomux echo` end-to-end tests: start the built command as a child process on
//! loopback port 0 (directly, under `prlimit`, or with its fds below 1024 filled), read the address
//! from its first line, collect its stderr, send it signals and stop it by PID when the guard drops;
//! blocking clients; and the child's fds, memory and CPU time from `/proc`.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The longest anything that must happen may take before a test fails: generous, because the machine
/// is shared and slow and the server is a debug build; it only turns a hang into a failure.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

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

/// A running `iomux echo` child, killed by its PID when dropped.
pub struct EchoServer {
    child: Child,
    /// The address from the first line.
    pub address: SocketAddr,
    /// The first line of stdout, verbatim.
    pub first_line: String,
    /// Everything printed on stderr so far.
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
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
        command
            .args(["echo", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn iomux echo");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (first_sender, first) = mpsc::channel();
        let out_reader = thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_sender.send(line);
            }
            // Keep the pipe drained until the child exits.
            for _ in lines.map_while(Result::ok) {}
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let writer = Arc::clone(&errors);
        let err_reader = thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                lock(&writer).push_str(&line);
                line.clear();
            }
        });
        let Ok(first_line) = first.recv_timeout(HANG_GUARD) else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = err_reader.join();
            panic!(
                "iomux echo {args:?} printed no first line; stderr: {}",
                lock(&errors)
            );
        };
        let address = parse_listening_line(&first_line);
        EchoServer {
            child,
            address,
            first_line,
            stderr: errors,
            readers: vec![out_reader, err_reader],
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new blocking connection to the server.
    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        connect(self.address)
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Waits until stderr contains `text`; returns all of stderr.
    #[track_caller]
    pub fn wait_for_stderr(&self, text: &str) -> String {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not print {text:?} on stderr; it printed: {stderr}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (a name for kill(1): `TERM`, `INT`) to the server.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits (at most [`HANG_GUARD`]) for the server to exit, and returns its status and stderr.
    #[track_caller]
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + HANG_GUARD;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for iomux echo") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "iomux echo did not exit within {HANG_GUARD:?}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    /// The number of fds the server holds (`/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Waits until the server holds exactly `expected` fds; panics with the last count if it does not
    /// within [`HANG_GUARD`].
    #[track_caller]
    pub fn wait_for_fd_count(&self, expected: usize) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let count = self.fd_count();
            if count == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server holds {count} fds, expected {expected}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The CPU time the server has used, user and system, all threads (`/proc/PID/stat`).
    pub fn cpu_time(&self) -> Duration {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/PID/stat");
        // The command name is in parentheses and may hold spaces: count fields after the last ')'.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("')' in stat") + 2..]
            .split(' ')
            .collect();
        // utime and stime are fields 14 and 15 of stat(5), the 12th and 13th after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 1000 / clock_ticks_per_second())
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
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

/// `sysconf(_SC_CLK_TCK)`, from getconf(1): the unit of the times in `/proc/PID/stat`.
fn clock_ticks_per_second() -> u64 {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("run getconf CLK_TCK");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("getconf CLK_TCK prints a number")
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

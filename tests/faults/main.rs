//! Fault injection against the built `iomux http` and `iomux echo`: running out of file descriptors,
//! peers that reset mid-response, peers that never read, half-open connections, `SIGTERM` during a
//! large transfer and document-root files that change while they are sent. Each case checks that the
//! server stays healthy (others are served meanwhile), gives back every fd it took (`/proc/PID/fd`),
//! and never lets a client mistake a cut response for a complete one. No speed is asserted.

#[path = "../support/mod.rs"]
mod support;

mod exhaustion;
mod files;
mod half_open;
mod resets;
mod shutdown;
mod stalled;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use socket2::SockRef;

use support::HANG_GUARD;
pub use support::process::{fd_count, wait_for_fd_count};
use support::process::{stop, wait_bounded};

/// `length` bytes in which every 4 KiB block starts with its own number and goes on with a pattern
/// made from `seed`, so a misplaced, repeated or foreign block shows; built by copying, so it is
/// quick even in a debug build.
pub fn pattern(length: usize, seed: u8) -> Vec<u8> {
    let block: Vec<u8> = (0..4096u32)
        .map(|index| (index as u8).wrapping_mul(seed) ^ (index >> 8) as u8)
        .collect();
    let mut content = Vec::with_capacity(length + block.len());
    let mut number = 0u32;
    while content.len() < length {
        content.extend_from_slice(&number.to_le_bytes());
        content.extend_from_slice(&block[4..]);
        number += 1;
    }
    content.truncate(length);
    content
}

/// Resets `stream`: `SO_LINGER` 0, then close, so the kernel sends RST instead of FIN.
pub fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

/// A client program running beside the test, its stdout read line by line as it comes and its
/// stderr collected; killed by its PID if still running when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Joined by [`finish`](Background::finish).
    stderr: Option<thread::JoinHandle<String>>,
}

impl Background {
    /// Starts `program ARGS…` with stdout and stderr piped.
    #[track_caller]
    pub fn spawn(program: &str, args: &[&str]) -> Background {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {program}: {error}"));
        let mut errors = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = errors.read_to_string(&mut text);
            text
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line the program prints (waiting at most [`HANG_GUARD`]).
    #[track_caller]
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(HANG_GUARD)
            .expect("the client printed a line in time")
    }

    /// Waits (at most [`HANG_GUARD`]) for the program to exit; returns its status, the lines it
    /// printed that were not read yet, then what it printed on stderr as one more line when it printed
    /// anything there.
    #[track_caller]
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = wait_bounded(&mut self.child, HANG_GUARD);
        // The reader thread ends at the pipe's end of file, which the exit brings.
        let mut rest: Vec<String> = self.lines.iter().collect();
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().expect("the stderr reader"));
        let stderr = stderr.unwrap_or_default();
        if !stderr.is_empty() {
            rest.push(format!("stderr: {}", stderr.trim_end()));
        }
        (status, rest)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Python's `http.client` downloading `PATH` from `HOST PORT`: reads the head and the first 64 KiB,
/// prints `started STATUS CONTENT_LENGTH`, sleeps `PAUSE` seconds (reading nothing, so the server's
/// socket buffers fill and it waits mid-response), then reads the rest with `read()` and prints
/// either `complete BYTES SHA256` or `incomplete BYTES` when `http.client` raises `IncompleteRead`
/// (the connection ended before `Content-Length` bytes came).
pub const PYTHON_DOWNLOAD: &str = "\
import hashlib, http.client, sys, time
host, port, path, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
connection = http.client.HTTPConnection(host, port, timeout=25)
connection.request('GET', path)
response = connection.getresponse()
length = int(response.getheader('Content-Length'))
body = bytearray(response.read(65536))
print('started', response.status, length, flush=True)
time.sleep(pause)
try:
    body += response.read()
    print('complete', len(body), hashlib.sha256(body).hexdigest(), flush=True)
except http.client.IncompleteRead as error:
    print('incomplete', len(body) + len(error.partial), flush=True)
";

/// Starts [`PYTHON_DOWNLOAD`] for `url_path` on `address` with `pause` seconds of stalling, and
/// returns once it printed `started 200 LENGTH` (checking `length`).
#[track_caller]
pub fn python_download(
    address: std::net::SocketAddr,
    url_path: &str,
    pause: f64,
    length: usize,
) -> Background {
    let download = Background::spawn(
        "python3",
        &[
            "-c",
            PYTHON_DOWNLOAD,
            &address.ip().to_string(),
            &address.port().to_string(),
            url_path,
            &pause.to_string(),
        ],
    );
    assert_eq!(download.line(), format!("started 200 {length}"));
    download
}

/// The last line of a finished [`PYTHON_DOWNLOAD`], split into words; fails if it did not exit 0.
#[track_caller]
pub fn python_outcome(download: Background) -> Vec<String> {
    let (status, lines) = download.finish();
    assert!(status.success(), "python exited with {status:?}: {lines:?}");
    lines
        .iter()
        .rfind(|line| !line.starts_with("stderr: "))
        .unwrap_or_else(|| panic!("python printed no outcome: {lines:?}"))
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// curl downloading `url` into `output` at most `rate` bytes per second (curl's `--limit-rate`).
#[track_caller]
pub fn curl_download(url: &str, output: &std::path::Path, rate: &str) -> Background {
    Background::spawn(
        "curl",
        &[
            "--silent",
            "--show-error",
            "--max-time",
            "25",
            "--limit-rate",
            rate,
            "--output",
            output.to_str().expect("a UTF-8 temp path"),
            "--write-out",
            "%{http_code} %{size_download}\\n",
            url,
        ],
    )
}

/// curl's exit status 18: "partial file", the transfer ended before `Content-Length` bytes came.
pub const CURL_PARTIAL_FILE: i32 = 18;

/// Checks that both downloads of a `length`-byte body were seen as cut: curl exited with
/// [`CURL_PARTIAL_FILE`] saying the transfer closed early, having written less than `length` bytes
/// to `output`, and Python's `http.client` raised `IncompleteRead` with fewer bytes.
#[track_caller]
pub fn assert_downloads_cut(
    curl: Background,
    python: Background,
    output: &std::path::Path,
    length: usize,
    extra: &[&str],
) {
    let (status, lines) = curl.finish();
    assert_eq!(
        status.code(),
        Some(CURL_PARTIAL_FILE),
        "{extra:?}: curl {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("transfer closed with")),
        "{lines:?}"
    );
    let received = std::fs::metadata(output).unwrap().len() as usize;
    assert!(received < length, "{received}");
    let outcome = python_outcome(python);
    assert_eq!(outcome[0], "incomplete", "{extra:?}: {outcome:?}");
    assert!(outcome[1].parse::<usize>().unwrap() < length);
}

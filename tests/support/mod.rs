//! Shared helpers of the end-to-end tests. Here, for `iomux http`: the server started as a child
//! process on loopback port 0 with its address read from its first line and its access log collected;
//! a document root with the files the tests ask for; a raw HTTP/1.1 client for hostile bytes; real
//! clients (curl, Python's `http.client`). Beside it: [`process`], the child process every server
//! helper runs (first line, stderr, signals, stop by PID, bounded waits, `/proc`); [`echo`], for
//! `iomux echo`; [`tools`], for `iomux client`, `iomux load` and their small servers.

#![allow(dead_code)] // each test binary uses its own subset

pub mod echo;
pub mod process;
pub mod tools;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use self::process::{Process, wait_until};

/// The longest anything that must happen may take before a test fails: generous, because the machine
/// is shared and slow and the server is a debug build; it only turns a hang into a failure.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The backends every Linux build has.
pub const BACKENDS: [&str; 3] = ["select", "poll", "epoll"];

/// A running `iomux http` child process, killed by its PID when dropped; the child's own calls
/// (`pid`, `stderr`, `signal`, `wait_exit`, `/proc` readings) are [`Process`]'s.
pub struct Server {
    process: Process,
    /// The address from the first line of output.
    pub address: SocketAddr,
}

impl Deref for Server {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Server {
    /// Starts `iomux http ROOT --port 0 ARGS…`.
    #[track_caller]
    pub fn start(root: &Path, args: &[&str]) -> Server {
        Server::start_command(Command::new(env!("CARGO_BIN_EXE_iomux")), root, args)
    }

    /// Starts `iomux http ROOT --port 0 ARGS…` under `prlimit --nofile=LIMIT:LIMIT` (util-linux), so
    /// the server itself runs with that many descriptors at most (prlimit execs it: same PID).
    #[track_caller]
    pub fn start_with_fd_limit(root: &Path, limit: u32, args: &[&str]) -> Server {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(env!("CARGO_BIN_EXE_iomux"));
        Server::start_command(command, root, args)
    }

    #[track_caller]
    fn start_command(mut command: Command, root: &Path, args: &[&str]) -> Server {
        command
            .arg("http")
            .arg(root)
            .args(["--port", "0"])
            .args(args);
        let process = Process::start(&mut command, "iomux http");
        let address = parse_listening_line(&process.first_line);
        Server { process, address }
    }

    /// A new raw connection to the server.
    #[track_caller]
    pub fn connect(&self) -> Client {
        Client::connect(self.address)
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The access log lines so far (stdout after the first line).
    pub fn log(&self) -> Vec<String> {
        self.process.lines()
    }

    /// Waits until the access log has at least `count` lines, and returns them.
    #[track_caller]
    pub fn wait_for_log_lines(&self, count: usize) -> Vec<String> {
        wait_until(HANG_GUARD, || match self.log() {
            log if log.len() >= count => Ok(log),
            log => Err(format!(
                "the access log never reached {count} lines: {log:?}"
            )),
        })
    }

    /// Waits until an access log line contains `needle`, and returns it.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_until(HANG_GUARD, || {
            let log = self.log();
            match log.iter().find(|line| line.contains(needle)) {
                Some(line) => Ok(line.clone()),
                None => Err(format!(
                    "no access log line contains {needle:?}; log: {log:?}"
                )),
            }
        })
    }
}

/// The address in `iomux http: listening on http://ADDR:PORT/ (backend B, workers N)`.
#[track_caller]
pub fn parse_listening_line(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("iomux http: listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let (address, tail) = rest
        .split_once("/ (")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    assert!(tail.ends_with(')'), "unexpected first line: {line:?}");
    address.parse().expect("the address parses")
}

/// A document root in a temporary directory, with a directory beside it that is outside the root.
pub struct Site {
    /// Holds the root (`root/`) and the outside directory (`outside/`).
    dir: tempfile::TempDir,
}

/// The bytes of the large test file: 256 KiB of a pattern that shows misplaced ranges.
pub fn big_content() -> Vec<u8> {
    (0..256 * 1024u32)
        .map(|index| (index % 251) as u8 ^ (index >> 10) as u8)
        .collect()
}

/// The bytes of the file of exactly 64 KiB (the largest sent with the head in one write).
pub fn limit_content() -> Vec<u8> {
    (0..64 * 1024u32).map(|index| (index % 241) as u8).collect()
}

impl Site {
    /// A root holding:
    /// `index.html`, `a.txt` ("hello\n"), `big.bin` (256 KiB), `limit.bin` (64 KiB), `style.css`,
    /// `logo.png`, `sub/index.html`, `docs/` (no index: `b.txt`, `a.txt`, `<b>&.txt`, `space name.txt`,
    /// `café.txt`, `nested/`, `.secret`), `.hidden`, `.git/config`, `%2e` (a file so named), links
    /// `inside-link` → `a.txt`, `outside-link` → `../outside/secret.txt`, `outside-dir` → `../outside`
    /// and `absolute-inside` → the absolute path of `a.txt`; `outside/secret.txt` is beside the root.
    #[track_caller]
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        let write = |path: &str, content: &[u8]| {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        };
        write(
            "index.html",
            b"<!doctype html><title>home</title><h1>home</h1>\n",
        );
        write("a.txt", b"hello\n");
        write("big.bin", &big_content());
        write("limit.bin", &limit_content());
        write("style.css", b"body { color: black }\n");
        write("logo.png", b"\x89PNG\r\n\x1a\nnot really");
        write("sub/index.html", b"<h1>sub</h1>\n");
        write("docs/b.txt", b"b\n");
        write("docs/a.txt", b"a\n");
        write("docs/<b>&.txt", b"markup\n");
        write("docs/space name.txt", b"space\n");
        write("docs/caf\u{e9}.txt", b"coffee\n");
        write("docs/nested/x.txt", b"x\n");
        write("docs/.secret", b"secret\n");
        write(".hidden", b"hidden\n");
        write(".git/config", b"[core]\n");
        write("%2e", b"percent two e\n");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret.txt"), b"outside the root\n").unwrap();
        symlink("a.txt", root.join("inside-link")).unwrap();
        symlink("../outside/secret.txt", root.join("outside-link")).unwrap();
        symlink("../outside", root.join("outside-dir")).unwrap();
        symlink(root.join("a.txt"), root.join("absolute-inside")).unwrap();
        Site { dir }
    }

    /// The document root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Writes `content` at `path` under the root.
    pub fn write(&self, path: &str, content: &[u8]) -> PathBuf {
        let path = self.root().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Header fields, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over one TCP connection: sends exact bytes, parses responses.
pub struct Client {
    /// The connection.
    pub stream: TcpStream,
    /// Bytes read but not yet parsed.
    buffer: Vec<u8>,
}

impl Client {
    /// Connects to `address`, with [`HANG_GUARD`] as read and write timeouts.
    #[track_caller]
    pub fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).expect("connect to iomux http");
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
        Client {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends `bytes`.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to iomux http");
    }

    /// Sends `GET path` with `Host` and the extra header lines, then reads the response.
    #[track_caller]
    pub fn get(&mut self, path: &str, headers: &[&str]) -> Response {
        self.send(request("GET", path, headers).as_bytes());
        self.response(false)
    }

    /// Reads one response; `head_only` for a response to HEAD (no body whatever the length says).
    #[track_caller]
    pub fn response(&mut self, head_only: bool) -> Response {
        self.try_response(head_only)
            .unwrap_or_else(|error| panic!("reading a response: {error}"))
    }

    /// Reads one response, or the error (e.g. the connection closed before one came).
    pub fn try_response(&mut self, head_only: bool) -> io::Result<Response> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            self.fill()?;
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "head is not UTF-8"))?;
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap_or(0));
        let length = if head_only || status == 304 {
            0
        } else {
            length
        };
        while self.buffer.len() < length {
            self.fill()?;
        }
        let body = self.buffer.drain(..length).collect();
        Ok(Response {
            status,
            status_line,
            headers,
            body,
        })
    }

    /// Reads until the server closes; returns what came (after what was already buffered).
    #[track_caller]
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buffer);
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("reading until the server closes: {error}"),
        }
        rest
    }

    /// Asserts that the server closes the connection (EOF or reset) without sending anything more.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let rest = self.read_to_close();
        assert!(
            rest.is_empty(),
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0; 64 * 1024];
        let read = self.stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// `METHOD path HTTP/1.1` with `Host: test` and `headers`, ending with the empty line.
pub fn request(method: &str, path: &str, headers: &[&str]) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Runs a command to completion with [`HANG_GUARD`] as its time limit (timeout(1)).
#[track_caller]
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new("timeout")
        .arg(HANG_GUARD.as_secs().to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"));
    assert_ne!(
        output.status.code(),
        Some(124),
        "{program} {args:?} timed out"
    );
    output
}

/// Runs curl with `args` (always `--silent --show-error`).
#[track_caller]
pub fn curl(args: &[&str]) -> Output {
    let mut all = vec!["--silent", "--show-error", "--max-time", "20"];
    all.extend_from_slice(args);
    run("curl", &all)
}

/// Runs `python3 -c SCRIPT ARGS…` and returns its stdout; fails the test if the script fails.
#[track_caller]
pub fn python(script: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let output = run("python3", &all);
    assert!(
        output.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).expect("python printed UTF-8")
}

/// Opens connections to `server`, each asking for `/a.txt`, until one is not answered within a
/// second: the server is out of fds and that one waits in the listen backlog. Each answer must be 200,
/// or 500 once the connection got a descriptor but opening the file did not. Returns the answered
/// connections, still open, and the waiting one; fails if 100 connections were all answered.
#[track_caller]
pub fn exhaust_descriptors(server: &Server) -> (Vec<Client>, Client) {
    let mut open = Vec::new();
    for _ in 0..100 {
        let mut client = server.connect();
        client.send(request("GET", "/a.txt", &[]).as_bytes());
        client
            .stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        match client.try_response(false) {
            Ok(response) => {
                assert!(matches!(response.status, 200 | 500), "{}", response.status);
                open.push(client);
            }
            Err(error) => {
                assert!(
                    matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "{error}"
                );
                return (open, client);
            }
        }
    }
    panic!("the server ran out of descriptors before 100 connections");
}

/// `clients` clients side by side, each on one keep-alive connection to `address`, each getting
/// `/big.bin` `rounds` times and checking every copy against [`big_content`].
#[track_caller]
pub fn fetch_big_file_side_by_side(address: SocketAddr, clients: usize, rounds: usize) {
    let expected = sha256(&big_content());
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let expected = expected.clone();
            thread::spawn(move || {
                let mut client = Client::connect(address);
                for _ in 0..rounds {
                    assert_eq!(sha256(&client.get("/big.bin", &[]).body), expected);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Counts each distinct status in `responses`.
pub fn statuses(responses: &[Response]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        *counts.entry(response.status).or_default() += 1;
    }
    counts
}

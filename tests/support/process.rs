//! The child process under every end-to-end helper: the built `iomux` (or a wrapper that execs it, same
//! PID) with its output piped, the first stdout line taken as the line that says where it listens, the
//! rest of stdout and all of stderr collected as they come; stopped by its PID when dropped; waits
//! bounded by a deadline; and readings of the child from `/proc/PID`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::HANG_GUARD;

/// A running child that printed its first line, killed by its PID when dropped.
pub struct Process {
    child: Child,
    /// What the child is, for failure messages (e.g. `iomux http`).
    what: String,
    /// The first line of stdout, verbatim.
    pub first_line: String,
    /// The lines printed on stdout after the first, as they arrive.
    lines: Arc<Mutex<Vec<String>>>,
    /// Everything printed on stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The stdout and stderr readers, joined once the child exited.
    readers: Vec<thread::JoinHandle<()>>,
}

impl Process {
    /// Spawns `command` with stdin from /dev/null and stdout and stderr piped, and waits (at most
    /// [`HANG_GUARD`]) for its first line of stdout; `what` names the child in failures.
    #[track_caller]
    pub fn start(command: &mut Command, what: &str) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {what}: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(String::new()));
        let (first_sender, first) = mpsc::channel();
        let line_writer = Arc::clone(&lines);
        // Reads until the child exits, so the pipe never fills.
        let out_reader = thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_sender.send(line);
            }
            for line in lines.map_while(Result::ok) {
                lock(&line_writer).push(line);
            }
        });
        let error_writer = Arc::clone(&errors);
        let err_reader = thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                lock(&error_writer).push_str(&line);
                line.clear();
            }
        });
        let Ok(first_line) = first.recv_timeout(HANG_GUARD) else {
            stop(&mut child);
            let _ = err_reader.join();
            panic!("{what} printed no first line; stderr: {}", lock(&errors));
        };
        Process {
            child,
            what: what.to_owned(),
            first_line,
            lines,
            stderr: errors,
            readers: vec![out_reader, err_reader],
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines printed on stdout after the first, so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    /// Everything the child printed on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Waits until stderr contains `needle`; returns all of stderr.
    #[track_caller]
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        wait_until(HANG_GUARD, || {
            let stderr = self.stderr();
            if stderr.contains(needle) {
                Ok(stderr)
            } else {
                Err(format!(
                    "{} never printed {needle:?} on stderr; it printed: {stderr}",
                    self.what
                ))
            }
        })
    }

    /// Sends `signal` (a name for kill(1), e.g. `TERM`) to the child.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits (at most [`HANG_GUARD`]) for the child to exit, then for its output to be read to the end;
    /// returns its status.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_bounded(&mut self.child, HANG_GUARD);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// The number of fds the child holds (`/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        fd_count(self.pid())
    }

    /// Waits until the child holds exactly `expected` fds.
    #[track_caller]
    pub fn wait_for_fd_count(&self, expected: usize) {
        wait_for_fd_count(self.pid(), expected);
    }

    /// User + system CPU time the child has used so far, all threads (`/proc/PID/stat`).
    pub fn cpu_time(&self) -> Duration {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/PID/stat");
        // The command name is in parentheses and may hold spaces: count fields after the last ')'.
        let after = &stat[stat.rfind(')').expect("')' in stat") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5), the 12th and 13th after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
    }

    /// The child's resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// How many threads the child runs (`/proc/PID/task`).
    pub fn threads(&self) -> usize {
        fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("read /proc/PID/task")
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Kills `child` by its PID if it is still running, and reaps it.
pub fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Waits for `child`, killing it and failing the test if it outlives `limit`.
#[track_caller]
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() >= deadline {
            stop(child);
            panic!("the child did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Calls `check` every 20 ms until it returns `Ok`, and returns that; fails the test with the last
/// `Err` (which says what was seen instead) once `limit` has passed.
#[track_caller]
pub fn wait_until<T>(limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(value) => return value,
            Err(message) => assert!(Instant::now() < deadline, "{message}"),
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The number of fds process `pid` holds (`/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// Waits until process `pid` holds exactly `expected` fds; fails with the last count if it does not
/// within [`HANG_GUARD`].
#[track_caller]
pub fn wait_for_fd_count(pid: u32, expected: usize) {
    wait_until(HANG_GUARD, || match fd_count(pid) {
        count if count == expected => Ok(()),
        count => Err(format!("the server holds {count} fds, expected {expected}")),
    });
}

/// Locks `mutex`, whether or not a reader thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

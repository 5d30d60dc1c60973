//! End-to-end tests of `iomux bench selectors`: the built command with tiny parameters, its JSON
//! records, its SVG chart, its skips and its usage errors. No speed is asserted.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: a debug build measuring a few tiny points takes a few seconds.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// What a finished run of the command left behind.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `iomux` with `args`, killing it (by its PID) if it outlives [`HANG_GUARD`].
#[track_caller]
fn iomux(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iomux"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iomux");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).expect("read stdout");
        text
    });
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).expect("read stderr");
        text
    });
    let status = wait_bounded(&mut child);
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

#[track_caller]
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(status) = child.try_wait().expect("wait for iomux") {
            return status;
        }
        if Instant::now() >= deadline {
            child.kill().expect("kill the hung iomux");
            child.wait().expect("reap the killed iomux");
            panic!("iomux did not finish within {HANG_GUARD:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn read_json(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the JSON file was written");
    match serde_json::from_str(&text).expect("the JSON file parses") {
        Value::Array(records) => records,
        other => panic!("expected an array of records, got {other}"),
    }
}

#[test]
fn writes_table_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("selectors.json");
    let svg = dir.path().join("selectors.svg");
    let output = iomux(&[
        "bench",
        "selectors",
        "--fds",
        "10,100",
        "--active",
        "1,10",
        "--placement",
        "end",
        "--timeout",
        "7",
        "--rounds",
        "5",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        output.stderr
    );
    // The progress bar is hidden because stderr is not a terminal.
    assert_eq!(output.stderr, "");
    assert!(
        output.stdout.contains("placement  end"),
        "{}",
        output.stdout
    );
    assert!(output.stdout.contains("7 ms per wait"), "{}", output.stdout);
    for backend in ["select", "poll", "epoll"] {
        assert!(output.stdout.contains(backend), "{}", output.stdout);
    }

    let records = read_json(&json);
    // 3 backends × (N=10: K=1 and K=10; N=100: K=1 and K=10).
    assert_eq!(records.len(), 12, "{records:#?}");
    let mut seen = Vec::new();
    for record in &records {
        let backend = record["backend"].as_str().expect("backend is a string");
        assert!(["select", "poll", "epoll"].contains(&backend), "{record}");
        let fds = record["fds"].as_u64().expect("fds is an integer");
        let active = record["active"].as_u64().expect("active is an integer");
        assert!([10, 100].contains(&fds), "{record}");
        assert!([1, 10].contains(&active), "{record}");
        let median = record["ns_per_op"].as_f64().expect("ns_per_op is a number");
        let min = record["min"].as_f64().expect("min is a number");
        let max = record["max"].as_f64().expect("max is a number");
        assert!(0.0 < min && min <= median && median <= max, "{record}");
        assert_eq!(record["samples"], 5, "{record}");
        assert_eq!(record["placement"], "end", "{record}");
        assert_eq!(record["timeout_ms"], 7, "{record}");
        seen.push((backend.to_owned(), fds, active));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12, "one record per backend and point");

    let chart = std::fs::read_to_string(&svg).expect("the SVG file was written");
    assert!(
        chart.starts_with("<svg"),
        "{}",
        &chart[..chart.len().min(200)]
    );
    assert!(chart.trim_end().ends_with("</svg>"));
    assert!(chart.contains("epoll K=10"), "the legend names each line");
}

#[test]
fn select_is_skipped_above_its_fd_limit() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("skip.json");
    let output = iomux(&[
        "bench",
        "selectors",
        "--backend",
        "select",
        "--fds",
        "2000",
        "--active",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "stderr: {}", output.stderr);
    assert!(
        output.stdout.contains("skipped select at N=2000"),
        "{}",
        output.stdout
    );
    assert!(read_json(&json).is_empty(), "a skipped point has no record");
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let output = iomux(&["bench", "selectors", "--backend", "select,kqueue"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", output.stderr);
    assert!(
        output.stderr.contains("unknown backend \"kqueue\""),
        "{}",
        output.stderr
    );
    assert_eq!(output.stdout, "");
}

#[test]
fn fewer_than_five_rounds_is_a_usage_error() {
    let output = iomux(&["bench", "selectors", "--rounds", "3"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", output.stderr);
    assert!(output.stderr.contains("--rounds"), "{}", output.stderr);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iomux"))
        .args([
            "bench",
            "selectors",
            "--backend",
            "epoll",
            "--fds",
            "10",
            "--active",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iomux");
    // Close the reading end before the table is written (measuring takes far longer than this).
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let status = wait_bounded(&mut child);
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    assert!(status.success(), "status {status:?}, stderr: {text}");
    assert_eq!(text, "", "nothing is reported for a closed stdout");
}

#[test]
fn more_fds_than_the_limit_is_an_error() {
    // util-linux's prlimit runs the command with a known, low open-file limit (hard and soft).
    let output = Command::new("prlimit")
        .arg("--nofile=1000:1000")
        .arg(env!("CARGO_BIN_EXE_iomux"))
        .args(["bench", "selectors", "--fds", "5000", "--active", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run prlimit (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with(
            "iomux: --fds 5000 needs about 5032 descriptors but this process may open 1000"
        ),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing is measured");
}

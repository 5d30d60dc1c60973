//! End-to-end tests of `iomux load echo`: the built command against an echo server on loopback (its
//! JSON, the text line, 1,000 connections, every backend), against a server that closes every
//! connection (errors counted, no crash) and against a closed port (exit 1). No speed is asserted.

mod support;

use serde_json::Value;
use support::tools::{
    Output, closing_server, echo_server, refused_address, run_iomux, small_scale,
};

/// Runs `iomux load echo ADDRESS --json` with `extra` flags and parses its one line of JSON.
#[track_caller]
fn load_json(address: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["load", "echo", address, "--json"];
    args.extend_from_slice(extra);
    // Under valgrind the first round trips can take longer than a short run: at least 5 s each.
    if small_scale()
        && let Some(at) = args.iter().position(|&arg| arg == "-d")
        && args[at + 1]
            .parse::<f64>()
            .is_ok_and(|seconds| seconds < 5.0)
    {
        args[at + 1] = "5";
    }
    let output = run_iomux(&args, b"");
    let text = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    assert_eq!(text.lines().count(), 1, "one line on stdout: {text:?}");
    let json: Value = serde_json::from_str(&text).expect("stdout is one JSON object");
    (output, json)
}

/// A numeric field of the report.
#[track_caller]
fn number(json: &Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {json}"))
}

#[track_caller]
fn assert_sound_latencies(json: &Value) {
    let (p50, p99, max) = (
        number(json, "p50_us"),
        number(json, "p99_us"),
        number(json, "max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{json}");
}

#[test]
fn echo_load_reports_messages_and_latencies_as_json() {
    let address = echo_server().to_string();
    let (output, json) = load_json(&address, &["-c", "8", "-d", "1", "--size", "64"]);
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(json["connections"], 8);
    assert_eq!(json["connected"], 8);
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["size"], 64);
    assert!(json["messages"].as_u64().expect("messages") > 0, "{json}");
    assert!(number(&json, "messages_per_sec") > 0.0);
    // The run lasts at least the duration asked for (a lower bound, not a speed check).
    assert!(number(&json, "duration_s") >= 1.0, "{json}");
    assert_sound_latencies(&json);
}

#[test]
fn echo_load_holds_a_thousand_connections() {
    let _ = iomux::raise_nofile_limit(); // this process holds the server's side of each connection
    let address = echo_server().to_string();
    let (output, json) = load_json(&address, &["-c", "1000", "-d", "1", "--size", "16"]);
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(json["connected"], 1000, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert!(
        json["messages"].as_u64().expect("messages") >= 1000,
        "{json}"
    );
    assert_sound_latencies(&json);
}

#[test]
fn echo_load_runs_on_every_backend_and_with_threads() {
    let address = echo_server().to_string();
    for backend in ["select", "poll", "epoll"] {
        let (output, json) = load_json(
            &address,
            &[
                "-c",
                "4",
                "-d",
                "0.3",
                "--backend",
                backend,
                "--threads",
                "2",
            ],
        );
        assert!(output.status.success(), "{backend}: {}", output.stderr);
        assert_eq!(json["backend"], backend);
        assert_eq!(json["threads"], 2);
        assert_eq!(json["errors"], 0, "{json}");
        assert!(json["messages"].as_u64().expect("messages") > 0, "{json}");
    }
}

#[test]
fn large_messages_are_written_while_the_echo_is_read() {
    let address = echo_server().to_string();
    // 4 MiB each: more than both sides' socket buffers, so writing all before reading would stall.
    // Under valgrind one round trip takes seconds.
    let duration = if small_scale() { "20" } else { "0.5" };
    let (output, json) = load_json(&address, &["-c", "2", "-d", duration, "--size", "4194304"]);
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(json["errors"], 0, "{json}");
    assert!(json["messages"].as_u64().expect("messages") > 0, "{json}");
}

#[test]
fn the_text_report_is_one_line() {
    let address = echo_server().to_string();
    let output = run_iomux(&["load", "echo", &address, "-c", "2", "-d", "0.3"], b"");
    assert!(output.status.success(), "{}", output.stderr);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.contains("messages/s"), "{text:?}");
    assert!(text.contains("over 2/2 connections"), "{text:?}");
}

#[test]
fn connections_the_server_closes_are_counted_as_errors() {
    let address = closing_server().to_string();
    let (output, json) = load_json(&address, &["-c", "4", "-d", "1"]);
    // Every connection opened, so the run itself succeeded; each then failed.
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(json["connected"], 4, "{json}");
    assert_eq!(json["errors"], 4, "{json}");
    assert_eq!(json["messages"], 0, "{json}");
    assert!(json["first_error"].is_string(), "{json}");
    assert!(
        output.stderr.contains("4 of 4 connections failed"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
}

#[test]
fn no_connection_at_all_exits_1() {
    let address = refused_address().to_string();
    let (output, json) = load_json(&address, &["-c", "3", "-d", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert_eq!(json["connected"], 0);
    assert_eq!(json["errors"], 3);
    assert!(
        output.stderr.starts_with(&format!(
            "iomux: no connection to {address} could be opened"
        )),
        "{}",
        output.stderr
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["load", "echo", "127.0.0.1:1", "-c", "0"][..],
        &["load", "echo", "127.0.0.1:1", "-d", "0"],
        &["load", "echo", "127.0.0.1:1", "--size", "0"],
        &["load", "echo", "127.0.0.1:1", "--backend", "kqueue"],
    ] {
        let output = run_iomux(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", output.stderr);
    }
}

//! Signals delivered to the process reach the event loop (layer 2) as ordinary callbacks. Signals
//! reach every thread of a process, so this binary holds a single test, and the case that must end
//! the process (the default action restored after the last loop lets go) runs in a child process:
//! this same binary, re-run with an environment variable naming the scenario.

use std::cell::RefCell;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use iomux::event_loop::{BackendKind, Error, EventLoop, Exit, Interest};

/// Names the scenario a child process runs.
const CHILD_SCENARIO: &str = "IOMUX_EVENT_LOOP_SIGNALS_CHILD";

/// A generous guard against hangs (never a speed check).
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Sends `signal` to this whole process from outside, as `kill(1)` from a shell would.
fn kill_from_outside(signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(std::process::id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn signals_stop_the_loop_gracefully() {
    if let Ok(scenario) = std::env::var(CHILD_SCENARIO) {
        child(&scenario);
        return;
    }
    // One loop after another, on every backend: each registers the signals again after the previous
    // loop was dropped.
    for kind in BackendKind::available() {
        sigterm_stops_accepting_and_the_loop_ends(kind);
        sigint_stops_the_loop(kind);
    }
    another_loop_still_listening_keeps_the_signal();
    forbidden_and_invalid_signals_are_typed_errors();
    default_action_is_restored_after_the_last_loop();
}

/// The graceful stop: on SIGTERM the server unregisters its listener, and `run` ends by itself once
/// nothing is left.
fn sigterm_stops_accepting_and_the_loop_ends(kind: BackendKind) {
    let mut event_loop = EventLoop::with_backend(kind).unwrap();
    let guard = event_loop.handle();
    thread::spawn(move || {
        thread::sleep(HANG_GUARD);
        let _ = guard.stop();
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener_fd = event_loop
        .register(
            listener,
            Interest::READ,
            |_, listener, _| {
                while listener.accept().is_ok() {}
            },
        )
        .unwrap();
    let received = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&received);
    event_loop
        .on_signal(libc::SIGTERM, move |event_loop, signal| {
            log.borrow_mut().push(signal);
            // Runs in the loop, not in the signal handler: any loop call is fine here.
            event_loop.unregister(listener_fd).unwrap();
        })
        .unwrap();
    // A signal callback does not count as work: the listener is what keeps the loop running.
    assert_eq!(event_loop.sources_len(), 1);
    assert!(!event_loop.is_registered(-1));
    thread::spawn(|| {
        thread::sleep(Duration::from_millis(20));
        kill_from_outside("TERM");
    });
    assert_eq!(event_loop.run().unwrap(), Exit::Idle, "backend {kind}");
    assert_eq!(*received.borrow(), [libc::SIGTERM]);
}

/// SIGINT raised from inside the loop (a timer), and a callback that stops the loop.
fn sigint_stops_the_loop(kind: BackendKind) {
    let mut event_loop = EventLoop::with_backend(kind).unwrap();
    let received = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&received);
    event_loop
        .on_signal(libc::SIGINT, move |_, _| panic!("replaced below"))
        .unwrap();
    // Replacing the callback keeps the registration.
    event_loop
        .on_signal(libc::SIGINT, move |event_loop, signal| {
            log.borrow_mut().push(signal);
            event_loop.stop();
        })
        .unwrap();
    event_loop.call_later(Duration::from_millis(5), |_| {
        signal_hook::low_level::raise(libc::SIGINT).unwrap();
    });
    let exit = event_loop.run_until(Instant::now() + HANG_GUARD).unwrap();
    assert_eq!(exit, Exit::Stopped, "backend {kind}");
    assert_eq!(*received.borrow(), [libc::SIGINT]);
    assert!(event_loop.remove_signal(libc::SIGINT));
    assert!(!event_loop.remove_signal(libc::SIGINT));
}

/// Two loops listen to SIGTERM; the first is dropped, and SIGTERM still goes to the second instead of
/// ending the process.
fn another_loop_still_listening_keeps_the_signal() {
    let mut first = EventLoop::new().unwrap();
    first.on_signal(libc::SIGTERM, |_, _| {}).unwrap();
    let mut second = EventLoop::with_backend(BackendKind::Poll).unwrap();
    let received = Rc::new(RefCell::new(0));
    let count = Rc::clone(&received);
    second
        .on_signal(libc::SIGTERM, move |event_loop, _| {
            *count.borrow_mut() += 1;
            event_loop.stop();
        })
        .unwrap();
    drop(first);
    kill_from_outside("TERM");
    let exit = second.run_until(Instant::now() + HANG_GUARD).unwrap();
    assert_eq!(exit, Exit::Stopped);
    assert_eq!(*received.borrow(), 1);
}

fn forbidden_and_invalid_signals_are_typed_errors() {
    let mut event_loop = EventLoop::new().unwrap();
    for signal in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        let error = event_loop.on_signal(signal, |_, _| {}).unwrap_err();
        assert!(matches!(error, Error::ForbiddenSignal { signal: s } if s == signal));
    }
    let error = event_loop.on_signal(12_345, |_, _| {}).unwrap_err();
    assert!(matches!(error, Error::Signal { signal: 12_345, .. }));
    assert!(error.os_error().is_some());
    assert!(event_loop.is_idle());
}

/// The last loop listening to SIGTERM is dropped; SIGTERM then ends the process as it did before.
fn default_action_is_restored_after_the_last_loop() {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "signals_stop_the_loop_gracefully",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_SCENARIO, "restore-default")
        .output()
        .unwrap();
    assert_eq!(
        status.status.signal(),
        Some(libc::SIGTERM),
        "child: {status:?}"
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("loop dropped"));
}

fn child(scenario: &str) {
    assert_eq!(scenario, "restore-default");
    let mut event_loop = EventLoop::new().unwrap();
    event_loop.on_signal(libc::SIGTERM, |_, _| {}).unwrap();
    event_loop.run_once(Some(Duration::ZERO)).unwrap();
    drop(event_loop);
    println!("loop dropped");
    signal_hook::low_level::raise(libc::SIGTERM).unwrap();
    // Not reached when the default action is back: the process has ended by SIGTERM.
    thread::sleep(Duration::from_secs(2));
}

//! Helpers of the runtime and net suites: a runtime per backend, a watchdog that turns a hang into a
//! failure, and `for_each_backend!`, which turns each case into one test per backend. Included by
//! `tests/runtime.rs` and `tests/net.rs` with `#[path]`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use iomux::runtime::{BackendKind, Runtime};

/// The longest a case may take before the watchdog fails it: generous, because the machine is shared
/// and slow; it only turns a hang into a failure.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// A runtime over `kind`.
#[track_caller]
pub fn runtime(kind: BackendKind) -> Runtime {
    Runtime::with_backend(kind).unwrap_or_else(|error| panic!("creating a {kind} runtime: {error}"))
}

/// Runs `case` on its own thread and fails if it takes longer than [`HANG_GUARD`]; a panic in the
/// case is passed on with its message.
pub fn run(kind: BackendKind, case: fn(BackendKind)) {
    let (done, finished) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name(format!("case-{kind}"))
        .spawn(move || {
            case(kind);
            let _ = done.send(());
        })
        .expect("starting the case's thread");
    match finished.recv_timeout(HANG_GUARD) {
        // Finished, or panicked (the sender was dropped): join to pass a panic on.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the case on {kind} hung for more than {HANG_GUARD:?}")
        }
    }
}

/// `for_each_backend!(case_a, case_b)` makes modules `case_a` and `case_b`, each with one `#[test]`
/// per backend (`case_a::select`, `case_a::poll`, `case_a::epoll`) that runs `fn case_a(BackendKind)`
/// under the watchdog.
macro_rules! for_each_backend {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use iomux::runtime::BackendKind;

                #[test]
                fn select() {
                    crate::support::run(BackendKind::Select, super::$case);
                }

                #[test]
                fn poll() {
                    crate::support::run(BackendKind::Poll, super::$case);
                }

                #[test]
                fn epoll() {
                    crate::support::run(BackendKind::Epoll, super::$case);
                }
            }
        )*
    };
}

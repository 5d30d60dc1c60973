//! Helpers of the runtime and net suites: a runtime per backend, a watchdog that turns a hung case
//! into a failure, and `for_each_backend!`, which turns each case into one test per backend under
//! the shared fd budget of [`util`](crate::util) (or alone, for cases that change the fd limit or fill
//! the fd table). Included by `tests/runtime.rs` and `tests/net.rs` with `#[path]`, beside `util`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use iomux::runtime::{BackendKind, Runtime};

/// The longest a whole case may take before the watchdog fails it: generous, because the machine is
/// shared and slow; it only turns a hang into a failure.
pub const CASE_GUARD: Duration = Duration::from_secs(60);

/// A runtime over `kind`.
#[track_caller]
pub fn runtime(kind: BackendKind) -> Runtime {
    Runtime::with_backend(kind).unwrap_or_else(|error| panic!("creating a {kind} runtime: {error}"))
}

/// Runs `case` on its own thread, beside other cases (the fd budget taken shared), and fails if it
/// takes longer than [`CASE_GUARD`]; a panic in the case is passed on with its message.
pub fn run(kind: BackendKind, case: fn(BackendKind)) {
    let _budget = crate::util::shared();
    watch(kind, case);
}

/// Like [`run`], with no other case running meanwhile (the fd budget taken exclusively): for cases
/// that lower the fd limit or push fd numbers past 1024.
#[allow(dead_code)] // tests/runtime.rs has no exclusive case
pub fn run_exclusive(kind: BackendKind, case: fn(BackendKind)) {
    let _budget = crate::util::exclusive();
    watch(kind, case);
}

fn watch(kind: BackendKind, case: fn(BackendKind)) {
    let (done, finished) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name(format!("case-{kind}"))
        .spawn(move || {
            case(kind);
            let _ = done.send(());
        })
        .expect("starting the case's thread");
    match finished.recv_timeout(CASE_GUARD) {
        // Finished, or panicked (the sender was dropped): join to pass a panic on.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the case on {kind} hung for more than {CASE_GUARD:?}")
        }
    }
}

/// `for_each_backend!(case_a, case_b)` makes modules `case_a` and `case_b`, each with one `#[test]`
/// per backend (`case_a::select`, `case_a::poll`, `case_a::epoll`) that runs `fn case_a(BackendKind)`
/// under the watchdog. `for_each_backend!(exclusive: case_c)` runs each alone ([`run_exclusive`]).
macro_rules! for_each_backend {
    (exclusive: $($case:ident),* $(,)?) => {
        $( for_each_backend!(@case run_exclusive $case); )*
    };
    ($($case:ident),* $(,)?) => {
        $( for_each_backend!(@case run $case); )*
    };
    (@case $runner:ident $case:ident) => {
        mod $case {
            use iomux::runtime::BackendKind;

            #[test]
            fn select() {
                crate::support::$runner(BackendKind::Select, super::$case);
            }

            #[test]
            fn poll() {
                crate::support::$runner(BackendKind::Poll, super::$case);
            }

            #[test]
            fn epoll() {
                crate::support::$runner(BackendKind::Epoll, super::$case);
            }
        }
    };
}

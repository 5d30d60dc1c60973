//! The selector conformance suite: every case runs against every backend (select, poll, epoll) over
//! real socketpairs, pipes and TCP sockets, and where the backends differ the case asserts each one's
//! documented behaviour — the typed `Unsupported` or `FdTooLarge` error, `Ready::INVALID` or silence
//! for a closed fd — instead of skipping it.
//!
//! Each case is a plain `fn(kind: BackendKind)`; [`for_each_backend!`] turns it into one `#[test]`
//! per backend, named `<topic>::<case>::<backend>`, e.g. `trigger::edge_reports_each_arrival_once::poll`.

/// Turns each listed case `fn(BackendKind)` of the calling module into a module of one `#[test]` per
/// backend, holding the fd budget (`crate::util::shared`, or `crate::util::exclusive` when the list
/// starts with `exclusive:`) while it runs. A new backend is one more line here.
macro_rules! for_each_backend {
    (exclusive: $($case:ident),+ $(,)?) => {
        for_each_backend!(@cases exclusive: $($case),+);
    };
    ($($case:ident),+ $(,)?) => {
        for_each_backend!(@cases shared: $($case),+);
    };
    (@cases $budget:ident: $($case:ident),+) => {
        $(
            mod $case {
                use iomux::selector::BackendKind;

                fn run(kind: BackendKind) {
                    let _budget = crate::util::$budget();
                    super::$case(kind);
                }

                #[test]
                fn select() {
                    run(BackendKind::Select);
                }

                #[test]
                fn poll() {
                    run(BackendKind::Poll);
                }

                #[cfg(target_os = "linux")]
                #[test]
                fn epoll() {
                    run(BackendKind::Epoll);
                }
            }
        )+
    };
}

mod close;
mod limits;
mod readiness;
mod register;
mod signals;
mod timeout;
mod trigger;
#[path = "../util/mod.rs"]
mod util;
mod waker;

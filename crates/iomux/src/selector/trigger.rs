//! When a registration reports readiness: [`Trigger`]. Layer 1, the selector API.

use std::fmt;

/// When a registered fd is reported.
///
/// | trigger | select | poll | epoll |
/// |---|---|---|---|
/// | `Level` | yes | yes | yes |
/// | `Edge` | refused (`Unsupported`) | refused (`Unsupported`) | native (`EPOLLET`) |
/// | `Oneshot` | emulated | emulated | native (`EPOLLONESHOT`) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// Reported on every wait while the fd is ready (the default, and Python's only mode).
    #[default]
    Level,
    /// Reported once each time new readiness arrives; the owner must read or write until `WouldBlock`,
    /// or it will not hear of the data already there again.
    Edge,
    /// Reported once, then silent until re-armed by `modify`.
    Oneshot,
}

impl Trigger {
    /// The name used in messages: `level`, `edge` or `oneshot`.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Level => "level",
            Trigger::Edge => "edge",
            Trigger::Oneshot => "oneshot",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

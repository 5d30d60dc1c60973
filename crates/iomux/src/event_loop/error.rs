//! [`Error`], what the event loop's calls can fail with. Layer 2, the callback event loop.

use std::io;

use crate::selector;

/// An event loop operation that failed, with the facts needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The selector under the loop refused the operation (registering, modifying, waiting…); the
    /// source says which fd, backend and system call.
    #[error("the event loop's selector failed")]
    Selector(#[from] selector::Error),
    /// `run`, `run_until` or `run_once` was called from inside one of the loop's own callbacks.
    #[error(
        "the event loop is already running; a callback cannot run it again, return from the callback instead"
    )]
    AlreadyRunning,
    /// A [`Handle`](super::Handle) was used after its loop was dropped.
    #[error("the event loop this handle belongs to is gone")]
    Closed,
    /// The signal cannot be caught: `SIGKILL` and `SIGSTOP` never can, and `SIGILL`, `SIGFPE` and
    /// `SIGSEGV` are faults a loop callback could not answer in time.
    #[error(
        "signal {signal} cannot be handled by an event loop; SIGKILL, SIGSTOP, SIGILL, SIGFPE and SIGSEGV are reserved"
    )]
    ForbiddenSignal {
        /// The signal number.
        signal: i32,
    },
    /// Installing the signal handler, or creating the loop's signal socket pair, failed.
    #[error("listening for signal {signal} failed")]
    Signal {
        /// The signal number.
        signal: i32,
        /// What the system call returned (EINVAL for a number that is not a signal).
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The OS error behind this one, if the kernel refused the operation.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Error::Selector(error) => error.os_error(),
            Error::Signal { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// A selector error converts as the selector's own conversion does (`AlreadyExists`, `NotFound`,
    /// the OS error's kind…); the others get the closest kind.
    fn from(error: Error) -> io::Error {
        if let Error::Selector(inner) = error {
            return io::Error::from(inner);
        }
        let kind = match &error {
            Error::AlreadyRunning => io::ErrorKind::ResourceBusy,
            Error::Closed => io::ErrorKind::BrokenPipe,
            Error::ForbiddenSignal { .. } => io::ErrorKind::InvalidInput,
            Error::Signal { source, .. } => source.kind(),
            Error::Selector(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

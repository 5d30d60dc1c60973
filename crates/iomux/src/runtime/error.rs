//! [`Error`], what the runtime layer's calls can fail with, and its conversion into `io::Error` for the
//! `AsyncRead` / `AsyncWrite` paths. Layer 3, the coroutine runtime.

use std::io;

use super::time::Elapsed;
use crate::selector;

/// A runtime operation that failed, with the facts needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The selector under the runtime refused an operation: creating it, registering an fd (select and
    /// an fd at or above 1024: [`selector::Error::FdTooLarge`]) or waiting.
    #[error(transparent)]
    Selector(#[from] selector::Error),
    /// A call that needs a runtime (registering a socket, spawning) was made outside
    /// [`Runtime::block_on`](super::Runtime::block_on).
    #[error("{operation} needs a running iomux runtime; call it inside Runtime::block_on")]
    NoRuntime {
        /// What was being done: `spawn`, `register a socket`, `sleep`.
        operation: &'static str,
    },
    /// The task was aborted through [`JoinHandle::abort`](super::JoinHandle::abort), or dropped with
    /// its runtime, before it finished.
    #[error("task {task} was cancelled before it finished")]
    Cancelled {
        /// The task's id, [`JoinHandle::id`](super::JoinHandle::id).
        task: u64,
    },
    /// The task panicked; the panic was caught and the runtime kept running.
    #[error("task {task} panicked: {message}")]
    Panicked {
        /// The task's id, [`JoinHandle::id`](super::JoinHandle::id).
        task: u64,
        /// The panic's message, or `<non-string panic payload>`.
        message: String,
    },
    /// A [`timeout`](super::timeout) passed before its future finished.
    #[error(transparent)]
    Elapsed(#[from] Elapsed),
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        match error {
            Error::Selector(error) => io::Error::from(error),
            Error::Elapsed(elapsed) => io::Error::from(elapsed),
            error @ Error::NoRuntime { .. } => io::Error::other(error),
            error @ Error::Cancelled { .. } => io::Error::new(io::ErrorKind::Interrupted, error),
            error @ Error::Panicked { .. } => io::Error::other(error),
        }
    }
}

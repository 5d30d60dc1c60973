//! [`Error`], what the selector layer's calls can fail with. Layer 1, the selector API.

use std::io;
use std::os::fd::RawFd;

use crate::sys::BackendKind;

/// A selector operation that failed, with the facts needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `register` was given an fd that is already registered (possibly a reused number of an fd that
    /// was closed without `unregister`).
    #[error("fd {fd} is already registered with this selector; use modify, or unregister it first")]
    AlreadyRegistered {
        /// The fd number.
        fd: RawFd,
    },
    /// `modify`, `unregister` or a lookup was given an fd that is not registered.
    #[error("fd {fd} is not registered with this selector")]
    NotRegistered {
        /// The fd number.
        fd: RawFd,
    },
    /// The fd number is at or above the backend's ceiling (select's `FD_SETSIZE`).
    #[error(
        "fd {fd} is at or above {backend}'s limit of {limit} (FD_SETSIZE); use the poll or epoll backend, which have no such limit"
    )]
    FdTooLarge {
        /// The fd number.
        fd: RawFd,
        /// The first fd number the backend cannot watch.
        limit: RawFd,
        /// The backend with the ceiling.
        backend: BackendKind,
    },
    /// The trigger mode is not available on this backend (edge triggering on select or poll).
    #[error(
        "{trigger} triggering is not supported by the {backend} backend; use epoll, or level or oneshot triggering"
    )]
    Unsupported {
        /// The backend.
        backend: BackendKind,
        /// The trigger mode asked for.
        trigger: super::Trigger,
    },
    /// The backend is not compiled in on this platform.
    #[error("the {backend} backend is not available on this platform; use select or poll")]
    BackendUnavailable {
        /// The backend asked for.
        backend: BackendKind,
    },
    /// A [`Waker`](super::Waker) was used after its selector was closed or dropped.
    #[error("the selector this waker belongs to is closed")]
    SelectorClosed,
    /// The operating system refused the operation.
    #[error("{operation}{} with the {backend} backend failed", fd_suffix(.fd))]
    Os {
        /// What was being done: `register`, `modify`, `unregister`, `select`, `create`, `close`, `wake`.
        operation: &'static str,
        /// The fd concerned, if any.
        fd: Option<RawFd>,
        /// The backend in use.
        backend: BackendKind,
        /// What the system call returned.
        #[source]
        source: io::Error,
    },
}

fn fd_suffix(fd: &Option<RawFd>) -> String {
    fd.map(|fd| format!(" fd {fd}")).unwrap_or_default()
}

impl Error {
    /// The OS error behind this one, if the kernel refused the operation.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::AlreadyRegistered { .. } => io::ErrorKind::AlreadyExists,
            Error::NotRegistered { .. } => io::ErrorKind::NotFound,
            Error::FdTooLarge { .. } => io::ErrorKind::InvalidInput,
            Error::Unsupported { .. } | Error::BackendUnavailable { .. } => {
                io::ErrorKind::Unsupported
            }
            Error::SelectorClosed => io::ErrorKind::BrokenPipe,
            Error::Os { source, .. } => source.kind(),
        };
        io::Error::new(kind, error)
    }
}

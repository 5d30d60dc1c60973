//! The OS boundary and the only module with `unsafe`: one file per multiplexing mechanism behind the
//! [`Backend`] trait, the waker's notification fd and a few other raw calls.
//!
//! Backends speak only fds and bits. The user's data, double-registration checks, EINTR retry with the
//! remaining time and timeout rounding live once, in the selector layer.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use crate::selector::{Event, Interest, Trigger};

pub(crate) mod clock;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod epoll;
pub mod fd;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod fs;
pub(crate) mod notify;
pub(crate) mod poll;
pub(crate) mod select;
pub(crate) mod signal;
pub(crate) mod socket;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod stat;

/// The kernel's `struct epoll_event`, which [`Event`] wraps so epoll can fill an `Events` buffer in
/// place; select and poll write the same layout.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) type RawEvent = libc::epoll_event;

/// Where epoll is missing, a struct of the same fields.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Clone, Copy)]
pub(crate) struct RawEvent {
    pub(crate) events: u32,
    pub(crate) u64: u64,
}

/// A readiness mechanism of the operating system.
///
/// Displays as `select`, `poll` or `epoll`, the strings [`FromStr`] and the command's `--backend` flag take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BackendKind {
    /// `select(2)`: bitmaps of at most `FD_SETSIZE` (1024) descriptors, rebuilt on every call.
    Select,
    /// `poll(2)`: an array of descriptors, scanned in full by the kernel on every call.
    Poll,
    /// `epoll(7)`: an interest set kept in the kernel and a ready list filled by callbacks (Linux).
    Epoll,
}

impl BackendKind {
    /// Every backend this crate knows, available here or not, in order of preference (worst first).
    pub const ALL: [BackendKind; 3] = [BackendKind::Select, BackendKind::Poll, BackendKind::Epoll];

    /// The name used on the command line and in output: `select`, `poll` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Select => "select",
            BackendKind::Poll => "poll",
            BackendKind::Epoll => "epoll",
        }
    }

    /// Whether this backend is compiled in on this platform.
    pub fn is_available(self) -> bool {
        match self {
            BackendKind::Select | BackendKind::Poll => true,
            BackendKind::Epoll => cfg!(any(target_os = "linux", target_os = "android")),
        }
    }

    /// The backends usable on this platform, worst first.
    pub fn available() -> Vec<BackendKind> {
        Self::ALL
            .into_iter()
            .filter(|kind| kind.is_available())
            .collect()
    }

    /// The best backend for this platform: epoll on Linux, poll elsewhere.
    pub fn best() -> BackendKind {
        if BackendKind::Epoll.is_available() {
            BackendKind::Epoll
        } else {
            BackendKind::Poll
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a backend name that is not `select`, `poll` or `epoll`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {name:?}; expected select, poll or epoll")]
pub struct UnknownBackend {
    /// The name that was given.
    pub name: String,
}

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| UnknownBackend {
                name: name.to_owned(),
            })
    }
}

/// What a backend can do, reported by [`Selector::capabilities`](crate::selector::Selector::capabilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Edge triggering is native (never emulated: on select and poll it is refused).
    pub edge: bool,
    /// Oneshot is native; otherwise the selector emulates it by disarming a reported fd.
    pub native_oneshot: bool,
    /// The first fd number the backend cannot watch, if it has such a ceiling (select: `FD_SETSIZE`).
    pub fd_limit: Option<RawFd>,
    /// The granularity of the wait call really in use; timeouts are rounded up to a multiple of it.
    pub resolution: Duration,
}

/// The contract each file in `sys/` implements.
///
/// - `add`, `modify` and `remove` change the kernel's or the backend's interest set; the selector has
///   already checked that the fd is (or is not) registered, that the trigger is supported and that the
///   fd is below [`Capabilities::fd_limit`].
/// - `wait` appends one [`Event`] per ready fd to `events` (at most `max_events` for backends that take
///   a limit) and returns; `timeout` is already rounded up to [`Capabilities::resolution`] and `None`
///   blocks. EINTR is returned as an error of kind `Interrupted`; the selector retries.
/// - `disarm` stops reporting `fd` until the next `modify` (the oneshot emulation of select and poll).
pub(crate) trait Backend {
    fn capabilities(&self) -> Capabilities;
    fn add(&mut self, fd: RawFd, interest: Interest, trigger: Trigger) -> io::Result<()>;
    fn modify(&mut self, fd: RawFd, interest: Interest, trigger: Trigger) -> io::Result<()>;
    fn remove(&mut self, fd: RawFd) -> io::Result<()>;
    fn disarm(&mut self, fd: RawFd);
    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        max_events: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()>;
    /// Releases the kernel object, reporting the error `close(2)` returns.
    fn close(self) -> io::Result<()>;
}

/// The backends behind one enum: static dispatch, one `match` per call, no boxed trait object.
#[derive(Debug)]
pub(crate) enum AnyBackend {
    /// Boxed: its three bitmaps and their working copies are 900 bytes.
    Select(Box<select::SelectBackend>),
    Poll(poll::PollBackend),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::EpollBackend),
}

macro_rules! dispatch {
    ($self:expr, $backend:ident => $call:expr) => {
        match $self {
            AnyBackend::Select($backend) => $call,
            AnyBackend::Poll($backend) => $call,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            AnyBackend::Epoll($backend) => $call,
        }
    };
}

impl AnyBackend {
    /// Opens a backend of the given kind.
    pub(crate) fn new(kind: BackendKind) -> io::Result<AnyBackend> {
        match kind {
            BackendKind::Select => Ok(AnyBackend::Select(Box::new(select::SelectBackend::new()))),
            BackendKind::Poll => Ok(AnyBackend::Poll(poll::PollBackend::new())),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            BackendKind::Epoll => epoll::EpollBackend::new().map(AnyBackend::Epoll),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            BackendKind::Epoll => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            AnyBackend::Select(_) => BackendKind::Select,
            AnyBackend::Poll(_) => BackendKind::Poll,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            AnyBackend::Epoll(_) => BackendKind::Epoll,
        }
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        dispatch!(self, backend => backend.capabilities())
    }

    pub(crate) fn add(
        &mut self,
        fd: RawFd,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        dispatch!(self, backend => backend.add(fd, interest, trigger))
    }

    pub(crate) fn modify(
        &mut self,
        fd: RawFd,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        dispatch!(self, backend => backend.modify(fd, interest, trigger))
    }

    pub(crate) fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        dispatch!(self, backend => backend.remove(fd))
    }

    pub(crate) fn disarm(&mut self, fd: RawFd) {
        dispatch!(self, backend => backend.disarm(fd))
    }

    #[inline]
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Event>,
        max_events: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        dispatch!(self, backend => backend.wait(events, max_events, timeout))
    }

    pub(crate) fn close(self) -> io::Result<()> {
        dispatch!(self, backend => backend.close())
    }
}

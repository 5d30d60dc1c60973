//! The waker's notification fd: an eventfd on Linux, a non-blocking pipe elsewhere (and on request, so
//! the pipe variant is tested on Linux too). Part of the OS boundary (`sys`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::fd::cvt;

/// Which kernel object carries a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WakerKind {
    /// The best one for the platform: eventfd on Linux, a pipe elsewhere.
    #[default]
    Auto,
    /// An `eventfd(2)` counter: one fd, one 8-byte write per wake-up (Linux).
    EventFd,
    /// A non-blocking `pipe(2)`: two fds, one byte per wake-up, portable.
    Pipe,
}

/// An open notification channel: a readable end the selector watches and a writable end wakers use.
#[derive(Debug)]
pub(crate) enum Notify {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    EventFd(OwnedFd),
    Pipe {
        read: OwnedFd,
        write: OwnedFd,
    },
}

impl Notify {
    pub(crate) fn new(kind: WakerKind) -> io::Result<Notify> {
        match kind {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WakerKind::Auto | WakerKind::EventFd => {
                // SAFETY: eventfd takes no pointers; the flags are valid constants.
                let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
                // SAFETY: eventfd just returned this fd and nothing else owns it.
                Ok(Notify::EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            WakerKind::EventFd => Err(io::Error::from(io::ErrorKind::Unsupported)),
            _ => {
                let mut fds = [-1 as RawFd; 2];
                // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
                cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
                // SAFETY: pipe2 succeeded, so fds[0] is a new fd owned by nobody else.
                let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
                // SAFETY: likewise for the write end, fds[1].
                let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
                Ok(Notify::Pipe { read, write })
            }
        }
    }

    /// The fd the selector watches for readability.
    pub(crate) fn read_fd(&self) -> RawFd {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Notify::EventFd(fd) => fd.as_raw_fd(),
            Notify::Pipe { read, .. } => read.as_raw_fd(),
        }
    }

    /// Makes the read end readable. A full pipe or a saturated counter already means "woken", so
    /// `EAGAIN` counts as success.
    pub(crate) fn wake(&self) -> io::Result<()> {
        let result = match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Notify::EventFd(fd) => {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a live u64 to an fd this value owns.
                cvt(unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) })
            }
            Notify::Pipe { write, .. } => {
                // SAFETY: writes one byte from a static buffer to an fd this value owns.
                cvt(unsafe { libc::write(write.as_raw_fd(), b"\x01".as_ptr().cast(), 1) })
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Consumes every pending wake-up so a level-triggered wait does not report it again.
    pub(crate) fn drain(&self) {
        let mut buffer = [0u8; 64];
        let fd = self.read_fd();
        loop {
            // SAFETY: reads into a live, writable 64-byte buffer (an eventfd needs at least 8).
            let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            // An eventfd is emptied by one read; a pipe is read until EAGAIN. EINTR retries.
            if read > 0 && matches!(self, Notify::Pipe { .. }) {
                continue;
            }
            if read == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
    }
}

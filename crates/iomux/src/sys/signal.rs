//! The two raw signal calls the event loop needs beside `signal-hook`: reading a signal's current
//! disposition, and ignoring `SIGPIPE`. Part of the OS boundary (`sys`).

use std::io;
use std::mem::MaybeUninit;
use std::ptr;

use super::fd::cvt;

/// What the process does on a signal, as `sigaction(2)` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `SIG_DFL`: the signal's default action (terminate, for SIGINT, SIGTERM and SIGPIPE).
    Default,
    /// `SIG_IGN`: the signal is discarded.
    Ignore,
    /// A handler function is installed.
    Handler,
}

/// The current disposition of `signal`, read without changing it.
pub(crate) fn disposition(signal: libc::c_int) -> io::Result<Disposition> {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only reads the disposition; `old` is live, writable storage for one
    // sigaction, which the kernel fills on success.
    cvt(unsafe { libc::sigaction(signal, ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: sigaction succeeded, so it initialised `old` (and zeroed storage is a valid sigaction:
    // every field is an integer, a bitmask or a nullable function pointer).
    let old = unsafe { old.assume_init() };
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    })
}

/// Makes `SIGPIPE` harmless for the whole process: if its disposition is the default (terminate), it
/// is set to ignore, so writing to a socket or pipe whose reader has gone fails with `EPIPE`
/// (`io::ErrorKind::BrokenPipe`) instead of killing the process. A handler someone installed, or an
/// ignore already in place, is left alone. Idempotent and cheap; every
/// [`EventLoop`](crate::event_loop::EventLoop) calls it when it is built.
///
/// Rust programs with a `std` `main` already start with `SIGPIPE` ignored; this covers the others
/// (a C host embedding iomux, a `main` built with `-Zon-broken-pipe=kill`). Standard-library sockets
/// also send with `MSG_NOSIGNAL`, but pipes have no such flag, so ignoring the signal is the one rule
/// that covers every fd.
///
/// # Errors
/// The OS error if `sigaction(2)` fails (it cannot for `SIGPIPE` on Linux).
pub fn ignore_sigpipe() -> io::Result<()> {
    if disposition(libc::SIGPIPE)? != Disposition::Default {
        return Ok(());
    }
    // SAFETY: all-zero bytes are a valid sigaction: every field is an integer, a bitmask (here the
    // empty mask, no flags) or a nullable function pointer.
    let mut ignore = unsafe { MaybeUninit::<libc::sigaction>::zeroed().assume_init() };
    // SIG_IGN is the documented way to ignore a signal; it installs no code.
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `ignore` is a live, initialised sigaction the kernel only reads; a null `oldact` asks
    // for nothing back.
    cvt(unsafe { libc::sigaction(libc::SIGPIPE, &ignore, ptr::null_mut()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigpipe_ends_up_ignored_or_handled() {
        ignore_sigpipe().unwrap();
        assert_ne!(disposition(libc::SIGPIPE).unwrap(), Disposition::Default);
        // Idempotent.
        ignore_sigpipe().unwrap();
        assert_ne!(disposition(libc::SIGPIPE).unwrap(), Disposition::Default);
    }

    #[test]
    fn an_invalid_signal_is_an_error() {
        assert!(disposition(0x7fff).is_err());
    }
}

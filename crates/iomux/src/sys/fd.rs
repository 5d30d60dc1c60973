//! The few raw calls that are not a multiplexing mechanism: error conversion, fd checks, closing with
//! an error report, resource limits and `sendfile`. Part of the OS boundary (`sys`).

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

/// Turns the C convention "-1 means failure, errno says why" into an `io::Result`.
///
/// The `unsafe` call stays at each call site; this only reads the return value.
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Integer return types of system calls.
pub(crate) trait IsMinusOne: Copy {
    /// Whether this is the `-1` failure marker.
    fn is_minus_one(self) -> bool;
}

impl IsMinusOne for i32 {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

impl IsMinusOne for isize {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

impl IsMinusOne for i64 {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

/// Checks that `fd` names an open descriptor (`fcntl(F_GETFD)`), so backends that keep their interest
/// set in user space (select, poll) refuse a closed fd at `register` time as epoll does.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument (EBADF if closed).
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// Closes `fd` and reports the error `close(2)` returns, which dropping an `OwnedFd` would discard.
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an `OwnedFd` we own, so nothing else closes it; close(2) is called once.
    cvt(unsafe { libc::close(raw) }).map(drop)
}

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux but not on every Unix
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (servers and benchmarks hold many fds); returns the
/// new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: hard as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one needs no privilege.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    Ok(hard)
}

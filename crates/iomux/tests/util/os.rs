//! The one OS-helper module of the library's tests, and the only test code allowed `unsafe`: signals
//! to one thread, fds at chosen numbers, a deliberately closed fd and a probe for `epoll_pwait2`.
//! Everything std or socket2 can do safely is done there instead.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::thread::JoinHandleExt;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// How many SIGUSR1 signals the handler has run for, in the whole process.
static SIGUSR1_HANDLED: AtomicUsize = AtomicUsize::new(0);

/// The SIGUSR1 handler: counts and returns. One lock-free atomic add is async-signal-safe.
extern "C" fn count_sigusr1(_signal: libc::c_int) {
    SIGUSR1_HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// How many SIGUSR1 signals have been handled so far in this process.
pub fn sigusr1_handled() -> usize {
    SIGUSR1_HANDLED.load(Ordering::Relaxed)
}

/// Installs the counting SIGUSR1 handler once per process, *without* `SA_RESTART`, so a signal makes
/// a blocked `select`, `poll` or `epoll_wait` fail with EINTR and the selector's retry is exercised.
/// (signal-hook always installs with `SA_RESTART`, hence libc here.)
fn install_sigusr1_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: sigaction is a plain C struct of integers, a function pointer and a signal set, for
        // which all-zero bytes are a valid value (no flags, empty mask, default restorer).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = count_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = 0;
        // SAFETY: `action.sa_mask` is a live, writable sigset_t.
        let emptied = unsafe { libc::sigemptyset(&mut action.sa_mask) };
        assert_eq!(emptied, 0, "sigemptyset failed");
        // SAFETY: `action` is fully initialised and its handler only does an atomic add; a null
        // pointer for the old action is allowed.
        let installed = unsafe { libc::sigaction(libc::SIGUSR1, &action, ptr::null_mut()) };
        assert_eq!(
            installed,
            0,
            "sigaction(SIGUSR1): {}",
            io::Error::last_os_error()
        );
    });
}

/// Sends SIGUSR1 to the thread behind `thread` (installing the counting handler first, so the
/// signal can never take its default action and end the process).
///
/// # Panics
/// If `pthread_kill` fails.
pub fn interrupt<T>(thread: &JoinHandle<T>) {
    install_sigusr1_handler();
    let target = thread.as_pthread_t();
    // SAFETY: the JoinHandle is borrowed, so the thread has not been joined or detached and its
    // pthread_t is still valid (even if the thread has already returned).
    let sent = unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
    assert_eq!(
        sent,
        0,
        "pthread_kill: {}",
        io::Error::from_raw_os_error(sent)
    );
}

/// A duplicate of `fd` numbered at least `min` (`fcntl(F_DUPFD_CLOEXEC)`), e.g. to get an fd above
/// select's `FD_SETSIZE` without opening a thousand others.
///
/// # Errors
/// EINVAL if `min` is at or above the soft `RLIMIT_NOFILE`; EMFILE if no number is free.
pub fn dup_at_least(fd: impl AsFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC reads a borrowed (so open) fd and an integer; it touches no memory.
    let raw = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this new fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Whether `fd` names an open descriptor of this process (`fcntl(F_GETFD)`).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// A borrowed fd that is *closed*: the number of an fd this case opened and dropped. It lets a case
/// check that the selector refuses a closed fd with an error instead of panicking or watching it.
///
/// Call it only under the exclusive fd-budget lock, so no other case can open an fd that takes the
/// number while it is borrowed.
///
/// # Panics
/// If `fd` is open.
pub fn closed_fd(fd: RawFd) -> BorrowedFd<'static> {
    assert!(fd >= 0 && !is_open(fd), "fd {fd} must be a closed fd");
    // SAFETY: BorrowedFd asks that the fd stay open while borrowed; this one is closed on purpose,
    // and is only handed to the selector, which must refuse it (EBADF) without doing IO through it.
    // The number is not -1 (checked above), and the exclusive fd-budget lock keeps every other case
    // from opening an fd that could take this number in the meantime.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Calls `f` with `fd` borrowed: for an fd this case cannot reach as an owned object (one the selector
/// owns, like its waker's), so it can hand that number to `register`.
///
/// The caller keeps the fd's owner alive and the fd open until `f` returns.
///
/// # Panics
/// If `fd` is not open.
pub fn with_borrowed<R>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    assert!(fd >= 0 && is_open(fd), "fd {fd} must be open");
    // SAFETY: the fd is open (checked above) and its owner, kept alive by the caller, closes it only
    // after `f` has returned and the borrow has ended.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Whether `epoll_pwait2(2)` is usable here: called with an invalid epoll fd it fails with EBADF when
/// the kernel has it, and with ENOSYS (old kernel, valgrind) or EPERM (seccomp) when not.
pub fn epoll_pwait2_available() -> bool {
    // SAFETY: the fd is invalid, so the kernel fails before it would write any event; the events
    // pointer is null, the timeout and the signal mask are null ("none"), the mask size is 8.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            -1 as libc::c_int,
            ptr::null_mut::<libc::epoll_event>(),
            1 as libc::c_int,
            ptr::null::<libc::timespec>(),
            ptr::null::<libc::sigset_t>(),
            8 as libc::size_t,
        )
    };
    assert_eq!(ret, -1, "epoll_pwait2 on fd -1 cannot succeed");
    let errno = io::Error::last_os_error().raw_os_error();
    !matches!(errno, Some(libc::ENOSYS | libc::EPERM))
}

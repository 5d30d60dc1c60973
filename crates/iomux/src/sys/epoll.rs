//! The `epoll(7)` backend: the interest set lives in the kernel, which queues ready fds as their state
//! changes, so a wait costs in proportion to the ready fds, not the registered ones. Part of the OS
//! boundary (`sys`).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::fd::{self, cvt};
use super::{Backend, Capabilities};
use crate::selector::{Event, Interest, Ready, Trigger};

/// Whether `epoll_pwait2(2)` (Linux 5.11, nanosecond timeouts) works here: probed once per process.
static PWAIT2: AtomicU8 = AtomicU8::new(PWAIT2_UNKNOWN);
const PWAIT2_UNKNOWN: u8 = 0;
const PWAIT2_YES: u8 = 1;
const PWAIT2_NO: u8 = 2;

/// The epoll backend: one epoll instance. `epoll_wait` fills the caller's `Events` buffer in place.
#[derive(Debug)]
pub(crate) struct EpollBackend {
    epoll: OwnedFd,
    pwait2: bool,
}

/// The `events` bits for an interest and trigger. RDHUP is asked for whenever reading is, and on edge
/// and oneshot entries; a level-triggered write-only entry leaves it out, or a peer's shutdown would
/// wake a writer waiting for buffer space over and over.
fn epoll_bits(interest: Interest, trigger: Trigger) -> u32 {
    let mut bits = 0;
    if interest.is_readable() {
        bits |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        bits |= libc::EPOLLOUT;
    }
    if interest.is_priority() {
        bits |= libc::EPOLLPRI;
    }
    match trigger {
        Trigger::Level => {}
        Trigger::Edge => bits |= libc::EPOLLET | libc::EPOLLRDHUP,
        Trigger::Oneshot => bits |= libc::EPOLLONESHOT | libc::EPOLLRDHUP,
    }
    bits as u32
}

// epoll reports readiness in poll(2)'s bit values, which `Ready` uses: conversion is one mask.
const _: () = {
    assert!(libc::EPOLLIN as u16 == Ready::READABLE.bits());
    assert!(libc::EPOLLOUT as u16 == Ready::WRITABLE.bits());
    assert!(libc::EPOLLERR as u16 == Ready::ERROR.bits());
    assert!(libc::EPOLLHUP as u16 == Ready::HUP.bits());
    assert!(libc::EPOLLRDHUP as u16 == Ready::READ_CLOSED.bits());
    assert!(libc::EPOLLPRI as u16 == Ready::PRIORITY.bits());
};

impl EpollBackend {
    pub(crate) fn new() -> io::Result<EpollBackend> {
        // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
        let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut backend = EpollBackend {
            epoll,
            pwait2: false,
        };
        backend.pwait2 = match PWAIT2.load(Ordering::Relaxed) {
            PWAIT2_YES => true,
            PWAIT2_NO => false,
            _ => {
                // ENOSYS: kernel before 5.11 or valgrind; EPERM: a seccomp filter. Either way fall
                // back to epoll_wait and its millisecond timeouts.
                let mut probe = [MaybeUninit::<Event>::uninit()];
                let works = pwait2(raw, &mut probe, Some(Duration::ZERO)).is_ok();
                PWAIT2.store(
                    if works { PWAIT2_YES } else { PWAIT2_NO },
                    Ordering::Relaxed,
                );
                works
            }
        };
        Ok(backend)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, bits: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: bits,
            u64: fd as u64,
        };
        // SAFETY: `event` is a live epoll_event; the kernel only reads it (and ignores it for DEL).
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }
}

/// The timeout as `epoll_wait(2)` takes it (-1 blocks), if it says exactly the same: none, or a whole
/// number of milliseconds that fits a `c_int`.
#[inline]
fn whole_millis(timeout: Option<Duration>) -> Option<libc::c_int> {
    let Some(timeout) = timeout else {
        return Some(-1);
    };
    if timeout.subsec_nanos() % 1_000_000 != 0 {
        return None;
    }
    let ms = timeout
        .as_secs()
        .checked_mul(1000)?
        .checked_add(u64::from(timeout.subsec_millis()))?;
    libc::c_int::try_from(ms).ok()
}

/// `epoll_pwait2` with a nanosecond timeout and no signal mask, through syscall(2) so it works with a C
/// library that lacks the wrapper. Fills at most `buffer.len()` entries and returns how many.
fn pwait2(
    epoll: RawFd,
    buffer: &mut [MaybeUninit<Event>],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let timespec = timeout.map(|timeout| libc::timespec {
        tv_sec: timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec.as_ref().map_or(ptr::null(), |ts| ts as *const _);
    let max_events = buffer.len().min(libc::c_int::MAX as usize) as libc::c_int;
    // `Event` is a transparent wrapper of `epoll_event`.
    let buffer_ptr = buffer.as_mut_ptr().cast::<libc::epoll_event>();
    // SAFETY: the buffer is live and writable for `max_events` entries of epoll_event's layout,
    // timespec_ptr is null or a live timespec, and a null sigmask means "keep the current mask" (its
    // size argument is then ignored).
    let ready = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epoll,
            buffer_ptr,
            max_events,
            timespec_ptr,
            ptr::null::<libc::sigset_t>(),
            8 as libc::size_t,
        )
    };
    Ok(cvt(ready)? as usize)
}

impl Backend for EpollBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edge: true,
            native_oneshot: true,
            fd_limit: None,
            resolution: if self.pwait2 {
                Duration::from_nanos(1)
            } else {
                Duration::from_millis(1)
            },
        }
    }

    fn add(&mut self, fd: RawFd, interest: Interest, trigger: Trigger) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, epoll_bits(interest, trigger))
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, trigger: Trigger) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, epoll_bits(interest, trigger))
    }

    fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    fn disarm(&mut self, _fd: RawFd) {
        // EPOLLONESHOT disarms in the kernel.
    }

    #[inline]
    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        max_events: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let max_events = max_events.clamp(1, libc::c_int::MAX as usize);
        // No allocation once the buffer has grown to `max_events` free entries.
        events.reserve(max_events);
        let filled = events.len();
        let spare = &mut events.spare_capacity_mut()[..max_events];
        // The timeout for epoll_wait, or None for epoll_pwait2, used only for a timeout epoll_wait
        // cannot express exactly (a fraction of a millisecond): its timespec copy and signal-mask
        // handling cost more in the kernel.
        let epoll_wait_timeout = match whole_millis(timeout) {
            Some(timeout_ms) => Some(timeout_ms),
            None if self.pwait2 => None,
            None => Some(timeout.map_or(-1, |timeout| {
                timeout
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(libc::c_int::MAX as u128) as libc::c_int
            })),
        };
        let ready = if let Some(timeout_ms) = epoll_wait_timeout {
            // `Event` is a transparent wrapper of `epoll_event`.
            let buffer = spare.as_mut_ptr().cast::<libc::epoll_event>();
            // Through syscall(2): glibc's epoll_wait is a cancellation point, which in a process with
            // more than one thread costs two atomic compare-and-swaps around the call. epoll_pwait
            // with no signal mask is epoll_wait, and exists on every architecture.
            // SAFETY: `buffer` points at `max_events` writable entries of epoll_event's layout (the
            // spare capacity reserved above); a null sigmask means "keep the current mask" (its size
            // argument is then ignored).
            let ready = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait,
                    self.epoll.as_raw_fd(),
                    buffer,
                    max_events as libc::c_int,
                    timeout_ms,
                    ptr::null::<libc::sigset_t>(),
                    8 as libc::size_t,
                )
            };
            cvt(ready)? as usize
        } else {
            pwait2(self.epoll.as_raw_fd(), spare, timeout)?
        };
        // SAFETY: the kernel initialised the first `ready` (at most `max_events`) entries of the spare
        // capacity, as epoll_wait(2) documents; they follow the `filled` initialised ones.
        unsafe { events.set_len(filled + ready) };
        Ok(())
    }

    fn close(self) -> io::Result<()> {
        fd::close(self.epoll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_millis_only_for_exact_timeouts() {
        assert_eq!(whole_millis(None), Some(-1));
        assert_eq!(whole_millis(Some(Duration::ZERO)), Some(0));
        assert_eq!(whole_millis(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(whole_millis(Some(Duration::from_micros(1500))), None);
        assert_eq!(whole_millis(Some(Duration::from_nanos(1))), None);
        let too_long = Duration::from_millis(libc::c_int::MAX as u64 + 1);
        assert_eq!(whole_millis(Some(too_long)), None);
        assert_eq!(whole_millis(Some(Duration::MAX)), None);
    }
}

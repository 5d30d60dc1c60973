//! The `select(2)` backend: three bitmaps of `FD_SETSIZE` bits kept in user space and copied for every
//! call, which the kernel scans up to the highest fd. Part of the OS boundary (`sys`).

use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use super::fd::{check_open, cvt};
use super::{Backend, Capabilities};
use crate::selector::{Event, Interest, Ready, Trigger};

/// `FD_SETSIZE`: select cannot watch an fd at or above this number; `FD_SET` on one would write past
/// the end of the bitmap, so `register` refuses it first.
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE;
const WORDS: usize = FD_SETSIZE / 64;

/// A bitmap laid out exactly like `libc::fd_set` (bit `fd % 64` of word `fd / 64`), with safe bit
/// operations; only the `select` call itself needs its address as an `fd_set`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct FdBits([u64; WORDS]);

const _: () = assert!(std::mem::size_of::<FdBits>() == std::mem::size_of::<libc::fd_set>());
const _: () = assert!(std::mem::align_of::<FdBits>() >= std::mem::align_of::<libc::fd_set>());

impl FdBits {
    const EMPTY: FdBits = FdBits([0; WORDS]);

    fn set(&mut self, fd: RawFd, on: bool) {
        let (word, bit) = (fd as usize / 64, fd as usize % 64);
        if on {
            self.0[word] |= 1 << bit;
        } else {
            self.0[word] &= !(1 << bit);
        }
    }

    fn contains(&self, fd: RawFd) -> bool {
        self.0[fd as usize / 64] & (1 << (fd as usize % 64)) != 0
    }

    fn as_fd_set(&mut self) -> *mut libc::fd_set {
        (self as *mut FdBits).cast()
    }
}

/// The select backend's interest set.
#[derive(Debug)]
pub(crate) struct SelectBackend {
    /// Armed fds by interest; a disarmed oneshot fd is in none of them.
    read: FdBits,
    write: FdBits,
    except: FdBits,
    /// Every registered fd, armed or not.
    registered: FdBits,
    /// One more than the highest registered fd: select's `nfds`, and where scans stop.
    nfds: usize,
    /// The working copies handed to the kernel, which overwrites them with the ready fds.
    ready_read: FdBits,
    ready_write: FdBits,
    ready_except: FdBits,
}

impl SelectBackend {
    pub(crate) fn new() -> SelectBackend {
        SelectBackend {
            read: FdBits::EMPTY,
            write: FdBits::EMPTY,
            except: FdBits::EMPTY,
            registered: FdBits::EMPTY,
            nfds: 0,
            ready_read: FdBits::EMPTY,
            ready_write: FdBits::EMPTY,
            ready_except: FdBits::EMPTY,
        }
    }

    fn arm(&mut self, fd: RawFd, interest: Interest) {
        self.read.set(fd, interest.is_readable());
        self.write.set(fd, interest.is_writable());
        self.except.set(fd, interest.is_priority());
    }

    fn words(&self) -> usize {
        self.nfds.div_ceil(64)
    }

    /// One `select` over the armed fds minus `skip`, filling the working copies.
    fn select_once(&mut self, skip: &FdBits, timeout: Option<Duration>) -> io::Result<usize> {
        let words = self.words();
        for word in 0..words {
            self.ready_read.0[word] = self.read.0[word] & !skip.0[word];
            self.ready_write.0[word] = self.write.0[word] & !skip.0[word];
            self.ready_except.0[word] = self.except.0[word] & !skip.0[word];
        }
        let mut timeval = timeout.map(|timeout| libc::timeval {
            tv_sec: timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            // Round up to the microsecond: the selector already did, this keeps it true regardless.
            tv_usec: timeout.subsec_nanos().div_ceil(1000).min(999_999) as libc::suseconds_t,
        });
        let timeval_ptr = timeval.as_mut().map_or(ptr::null_mut(), |tv| tv as *mut _);
        let nfds = self.nfds as libc::c_int;
        let (read, write, except) = (
            self.ready_read.as_fd_set(),
            self.ready_write.as_fd_set(),
            self.ready_except.as_fd_set(),
        );
        // SAFETY: the three sets are live FdBits with fd_set's layout (asserted above), nfds is at most
        // FD_SETSIZE because register refuses larger fds, and timeval_ptr is null or a live timeval.
        let ready = cvt(unsafe { libc::select(nfds, read, write, except, timeval_ptr) })?;
        Ok(ready as usize)
    }

    /// Appends an event for every fd set in the working copies.
    fn collect(&self, events: &mut Vec<Event>) {
        for word in 0..self.words() {
            let mut bits =
                self.ready_read.0[word] | self.ready_write.0[word] | self.ready_except.0[word];
            while bits != 0 {
                let fd = (word * 64 + bits.trailing_zeros() as usize) as RawFd;
                bits &= bits - 1;
                let mut ready = Ready::EMPTY;
                if self.ready_read.contains(fd) {
                    ready = ready | Ready::READABLE;
                }
                if self.ready_write.contains(fd) {
                    ready = ready | Ready::WRITABLE;
                }
                if self.ready_except.contains(fd) {
                    ready = ready | Ready::PRIORITY;
                }
                events.push(Event::new(fd, ready));
            }
        }
    }

    /// After EBADF: the armed fds that are closed, found one `fcntl` each.
    fn closed_fds(&self) -> FdBits {
        let mut closed = FdBits::EMPTY;
        for word in 0..self.words() {
            let mut bits = self.read.0[word] | self.write.0[word] | self.except.0[word];
            while bits != 0 {
                let fd = (word * 64 + bits.trailing_zeros() as usize) as RawFd;
                bits &= bits - 1;
                if check_open(fd).is_err() {
                    closed.set(fd, true);
                }
            }
        }
        closed
    }
}

impl Backend for SelectBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edge: false,
            native_oneshot: false,
            fd_limit: Some(FD_SETSIZE as RawFd),
            resolution: Duration::from_micros(1),
        }
    }

    fn add(&mut self, fd: RawFd, interest: Interest, _trigger: Trigger) -> io::Result<()> {
        check_open(fd)?;
        self.registered.set(fd, true);
        self.arm(fd, interest);
        self.nfds = self.nfds.max(fd as usize + 1);
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, _trigger: Trigger) -> io::Result<()> {
        self.arm(fd, interest);
        Ok(())
    }

    fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        self.registered.set(fd, false);
        self.disarm(fd);
        while self.nfds > 0 && !self.registered.contains(self.nfds as RawFd - 1) {
            self.nfds -= 1;
        }
        Ok(())
    }

    fn disarm(&mut self, fd: RawFd) {
        self.read.set(fd, false);
        self.write.set(fd, false);
        self.except.set(fd, false);
    }

    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        _max_events: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self.select_once(&FdBits::EMPTY, timeout) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                self.collect(events);
                return Ok(());
            }
            Err(err) if err.raw_os_error() != Some(libc::EBADF) => return Err(err),
            Err(_) => {}
        }
        // An fd was closed without unregister. select(2) only says EBADF, so find which ones, report
        // them as invalid, and poll the others without waiting: there is news to return now.
        let closed = self.closed_fds();
        match self.select_once(&closed, Some(Duration::ZERO)) {
            Ok(0) => {}
            Ok(_) => self.collect(events),
            // Another fd closed in between (another thread): report what we know, retry next call.
            Err(err) if err.raw_os_error() == Some(libc::EBADF) => {}
            Err(err) => return Err(err),
        }
        for word in 0..self.words() {
            let mut bits = closed.0[word];
            while bits != 0 {
                let fd = (word * 64 + bits.trailing_zeros() as usize) as RawFd;
                bits &= bits - 1;
                events.push(Event::new(fd, Ready::INVALID));
            }
        }
        Ok(())
    }

    fn close(self) -> io::Result<()> {
        Ok(())
    }
}

//! What a registration asks for ([`Interest`]) and what a wait reports ([`Ready`]). Layer 1, the
//! selector API.

use std::fmt;
use std::num::NonZeroU8;
use std::ops::BitOr;

/// The readiness a registration waits for: readable, writable, priority data, or a combination.
///
/// An empty interest cannot be built: to stop watching an fd, unregister it.
///
/// ```
/// use iomux::selector::Interest;
/// let both = Interest::READ | Interest::WRITE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both.remove(Interest::WRITE), Some(Interest::READ));
/// assert_eq!(Interest::READ.remove(Interest::READ), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(NonZeroU8);

const READ: u8 = 1;
const WRITE: u8 = 2;
const PRIORITY: u8 = 4;

impl Interest {
    /// Readable: data, a new connection, or the peer's end of stream (Python's `EVENT_READ`).
    pub const READ: Interest = Interest(NonZeroU8::new(READ).expect("READ is non-zero"));
    /// Writable: room in the send buffer, or a finished connect (Python's `EVENT_WRITE`).
    pub const WRITE: Interest = Interest(NonZeroU8::new(WRITE).expect("WRITE is non-zero"));
    /// Priority (out-of-band) data: select's exceptional set, the seeds' `xlist`; `POLLPRI`/`EPOLLPRI`.
    pub const PRIORITY: Interest =
        Interest(NonZeroU8::new(PRIORITY).expect("PRIORITY is non-zero"));

    /// Whether readability is asked for.
    pub const fn is_readable(self) -> bool {
        self.0.get() & READ != 0
    }

    /// Whether writability is asked for.
    pub const fn is_writable(self) -> bool {
        self.0.get() & WRITE != 0
    }

    /// Whether priority data is asked for.
    pub const fn is_priority(self) -> bool {
        self.0.get() & PRIORITY != 0
    }

    /// Both interests together.
    pub const fn add(self, other: Interest) -> Interest {
        match NonZeroU8::new(self.0.get() | other.0.get()) {
            Some(bits) => Interest(bits),
            None => self, // unreachable: a non-zero value or'ed with anything is non-zero
        }
    }

    /// This interest without `other`; `None` if nothing would be left.
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        match NonZeroU8::new(self.0.get() & !other.0.get()) {
            Some(bits) => Some(Interest(bits)),
            None => None,
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READ"),
            (self.is_writable(), "WRITE"),
            (self.is_priority(), "PRIORITY"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

/// The readiness a wait reported for one fd.
///
/// Which flags a backend can report differs: select reports readable, writable and priority (a peer's
/// close shows as readable, and `read` then returns 0) and [`INVALID`](Ready::INVALID) for a closed fd;
/// poll and epoll also report error, hang-up and read-closed. Error and hang-up are reported whether or
/// not they were asked for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ready(u16);

// The flags carry the values of Linux's poll(2) bits, which epoll(7) shares, so the poll and epoll
// backends convert what the kernel reports with one mask (`Ready::from_kernel_bits`); the backends
// assert the values at compile time.
const READABLE: u16 = 0x001;
const PRIORITY_BIT: u16 = 0x002;
const WRITABLE: u16 = 0x004;
const ERROR: u16 = 0x008;
const HUP: u16 = 0x010;
const INVALID: u16 = 0x020;
const READ_CLOSED: u16 = 0x2000;
const ALL: u16 = READABLE | PRIORITY_BIT | WRITABLE | ERROR | HUP | INVALID | READ_CLOSED;

impl Ready {
    /// Nothing: the identity of `|`.
    pub const EMPTY: Ready = Ready(0);
    /// Data can be read without blocking (or the peer's end of stream, or an error, is there to read).
    pub const READABLE: Ready = Ready(READABLE);
    /// Data can be written without blocking.
    pub const WRITABLE: Ready = Ready(WRITABLE);
    /// An error is pending on the fd (`POLLERR`, `EPOLLERR`); `take_error` or the next IO call says which.
    pub const ERROR: Ready = Ready(ERROR);
    /// Hang-up: both directions are closed (`POLLHUP`, `EPOLLHUP`).
    pub const HUP: Ready = Ready(HUP);
    /// The peer closed or shut down its write side (`POLLRDHUP`, `EPOLLRDHUP`).
    pub const READ_CLOSED: Ready = Ready(READ_CLOSED);
    /// Priority (out-of-band) data: select's exceptional condition, `POLLPRI`, `EPOLLPRI`.
    pub const PRIORITY: Ready = Ready(PRIORITY_BIT);
    /// The fd was closed without being unregistered (`POLLNVAL`; select's `EBADF`, then a check of
    /// each fd). epoll cannot report this: the kernel drops a closed fd from the set silently.
    pub const INVALID: Ready = Ready(INVALID);

    /// The flags of a poll(2) `revents` or an epoll(7) `events` word; bits with no flag are dropped.
    #[inline]
    pub(crate) const fn from_kernel_bits(bits: u32) -> Ready {
        Ready((bits & ALL as u32) as u16)
    }

    /// The raw value, for the backends' compile-time checks.
    pub(crate) const fn bits(self) -> u16 {
        self.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// Readable.
    pub const fn is_readable(self) -> bool {
        self.contains(Ready::READABLE)
    }

    /// Writable.
    pub const fn is_writable(self) -> bool {
        self.contains(Ready::WRITABLE)
    }

    /// An error is pending.
    pub const fn is_error(self) -> bool {
        self.contains(Ready::ERROR)
    }

    /// Hang-up (both directions closed).
    pub const fn is_hup(self) -> bool {
        self.contains(Ready::HUP)
    }

    /// Priority data is there.
    pub const fn is_priority(self) -> bool {
        self.contains(Ready::PRIORITY)
    }

    /// The fd was closed while registered.
    pub const fn is_invalid(self) -> bool {
        self.contains(Ready::INVALID)
    }

    /// The peer will send nothing more: read-closed or hang-up. (On select, a read returning 0 says it.)
    pub const fn is_read_closed(self) -> bool {
        self.0 & (Ready::READ_CLOSED.0 | Ready::HUP.0) != 0
    }

    /// Writing can no longer succeed: hang-up or error.
    pub const fn is_write_closed(self) -> bool {
        self.0 & (Ready::HUP.0 | Ready::ERROR.0) != 0
    }
}

impl BitOr for Ready {
    type Output = Ready;

    fn bitor(self, other: Ready) -> Ready {
        Ready(self.0 | other.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Ready, &str); 7] = [
            (Ready::READABLE, "READABLE"),
            (Ready::WRITABLE, "WRITABLE"),
            (Ready::ERROR, "ERROR"),
            (Ready::HUP, "HUP"),
            (Ready::READ_CLOSED, "READ_CLOSED"),
            (Ready::PRIORITY, "PRIORITY"),
            (Ready::INVALID, "INVALID"),
        ];
        if self.is_empty() {
            return f.write_str("EMPTY");
        }
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

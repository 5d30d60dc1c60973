//! [`Events`], the reusable buffer [`Selector::select`](super::Selector::select) fills, and the
//! [`Event`] it holds for each ready fd. Layer 1, the selector API.

use std::fmt;
use std::os::fd::RawFd;
use std::slice;

use super::Ready;
use crate::sys::RawEvent;

/// One ready fd and what it is ready for.
///
/// It has the layout of the kernel's `struct epoll_event` (the fd in the data word, the readiness in
/// poll(2)'s bit values), so epoll fills the buffer of [`Events`] directly, with no copy.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Event(RawEvent);

impl Event {
    pub(crate) fn new(fd: RawFd, ready: Ready) -> Event {
        Event(RawEvent {
            events: u32::from(ready.bits()),
            u64: fd as u64,
        })
    }

    /// The fd; [`Selector::get`](super::Selector::get) finds its registration.
    #[inline]
    pub fn fd(&self) -> RawFd {
        // The selector stores the fd in the data word; a copy, as the kernel's struct is packed.
        let data = self.0.u64;
        data as RawFd
    }

    /// What it is ready for.
    #[inline]
    pub fn ready(&self) -> Ready {
        let bits = self.0.events;
        Ready::from_kernel_bits(bits)
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.fd() == other.fd() && self.ready() == other.ready()
    }
}

impl Eq for Event {}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("fd", &self.fd())
            .field("ready", &self.ready())
            .finish()
    }
}

/// The events of one wait, in a buffer reused from call to call so that a steady-state `select`
/// allocates nothing.
///
/// `capacity` bounds how many events epoll returns per call (the kernel hands out the rest on later
/// calls, in turn); select and poll report every ready fd, and the buffer grows to hold them once.
#[derive(Debug, Clone)]
pub struct Events {
    /// The events of the last wait, only for registered fds.
    pub(crate) list: Vec<Event>,
    /// At least 1: how many events one epoll wait may return.
    pub(crate) capacity: usize,
    /// Whether the last wait was ended by a [`Waker`](super::Waker).
    pub(crate) woken: bool,
}

impl Events {
    /// A buffer for up to `capacity` events per wait (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
            woken: false,
        }
    }

    /// How many events one epoll wait may return.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of events of the last wait.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait reported nothing (it timed out, or a waker ended it).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a [`Waker`](super::Waker) ended the last wait.
    pub fn is_woken(&self) -> bool {
        self.woken
    }

    /// The events of the last wait.
    pub fn iter(&self) -> slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Forgets the last wait's events, keeping the memory.
    pub fn clear(&mut self) {
        self.list.clear();
        self.woken = false;
    }
}

impl Default for Events {
    /// A buffer for 1024 events per wait.
    fn default() -> Events {
        Events::with_capacity(1024)
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

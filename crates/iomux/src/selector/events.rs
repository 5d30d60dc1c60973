//! [`Events`], the reusable buffer [`Selector::select`](super::Selector::select) fills, and the
//! [`Event`] it holds for each ready fd. Layer 1, the selector API.

use std::os::fd::RawFd;
use std::slice;

use super::Ready;

/// One ready fd and what it is ready for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    fd: RawFd,
    ready: Ready,
}

impl Event {
    pub(crate) fn new(fd: RawFd, ready: Ready) -> Event {
        Event { fd, ready }
    }

    /// The fd; [`Selector::get`](super::Selector::get) finds its registration.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// What it is ready for.
    pub fn ready(&self) -> Ready {
        self.ready
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

//! One registration: [`Key`] (fd, interest, trigger and the user's data), what Python calls a
//! `SelectorKey`. Layer 1, the selector API.

use std::os::fd::RawFd;

use super::{Interest, Trigger};

/// A registration: the fd, what it waits for, when it is reported, and the data attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<T> {
    /// The registered fd number; unique within a selector.
    pub(crate) fd: RawFd,
    /// What the fd is watched for.
    pub(crate) interest: Interest,
    /// When it is reported.
    pub(crate) trigger: Trigger,
    /// The user's data (Python's `key.data`), handed back by `unregister`.
    pub(crate) data: T,
}

impl<T> Key<T> {
    /// The registered fd number.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// What the fd is watched for.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// When it is reported.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// The data attached at `register` or the last `modify`.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The attached data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

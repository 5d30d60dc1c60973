//! The `poll(2)` backend: an array of `pollfd` kept in user space, passed whole to the kernel on every
//! call and scanned for `revents`. Part of the OS boundary (`sys`).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::fd::{check_open, cvt};
use super::{Backend, Capabilities};
use crate::selector::{Event, Interest, Ready, Trigger};

/// Marks an empty slot of `PollBackend::position`.
const NO_POSITION: u32 = u32::MAX;

/// The poll backend's interest set.
#[derive(Debug)]
pub(crate) struct PollBackend {
    /// The array poll(2) reads. A disarmed oneshot entry holds `!fd` (negative), which poll skips.
    fds: Vec<libc::pollfd>,
    /// `position[fd]` is the index of fd's entry in `fds`, or `NO_POSITION`.
    position: Vec<u32>,
}

/// The `events` bits for an interest. RDHUP is asked for whenever reading is: it tells a peer's
/// shutdown apart from data. It is not asked for on write-only entries, where a level-triggered RDHUP
/// would wake a writer waiting for buffer space over and over.
fn poll_bits(interest: Interest) -> libc::c_short {
    let mut bits = 0;
    if interest.is_readable() {
        bits |= libc::POLLIN | libc::POLLRDHUP;
    }
    if interest.is_writable() {
        bits |= libc::POLLOUT;
    }
    if interest.is_priority() {
        bits |= libc::POLLPRI;
    }
    bits
}

// `Ready` uses poll(2)'s bit values: conversion is one mask.
const _: () = {
    assert!(libc::POLLIN as u16 == Ready::READABLE.bits());
    assert!(libc::POLLOUT as u16 == Ready::WRITABLE.bits());
    assert!(libc::POLLERR as u16 == Ready::ERROR.bits());
    assert!(libc::POLLHUP as u16 == Ready::HUP.bits());
    assert!(libc::POLLRDHUP as u16 == Ready::READ_CLOSED.bits());
    assert!(libc::POLLPRI as u16 == Ready::PRIORITY.bits());
    assert!(libc::POLLNVAL as u16 == Ready::INVALID.bits());
};

impl PollBackend {
    pub(crate) fn new() -> PollBackend {
        PollBackend {
            fds: Vec::new(),
            position: Vec::new(),
        }
    }

    fn entry(&mut self, fd: RawFd) -> Option<&mut libc::pollfd> {
        let index = *self.position.get(fd as usize)?;
        self.fds.get_mut(index as usize)
    }
}

impl Backend for PollBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edge: false,
            native_oneshot: false,
            fd_limit: None,
            resolution: Duration::from_millis(1),
        }
    }

    fn add(&mut self, fd: RawFd, interest: Interest, _trigger: Trigger) -> io::Result<()> {
        check_open(fd)?;
        let slot = fd as usize;
        if self.position.len() <= slot {
            self.position.resize(slot + 1, NO_POSITION);
        }
        self.position[slot] = self.fds.len() as u32;
        self.fds.push(libc::pollfd {
            fd,
            events: poll_bits(interest),
            revents: 0,
        });
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, interest: Interest, _trigger: Trigger) -> io::Result<()> {
        let entry = self
            .entry(fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        entry.fd = fd;
        entry.events = poll_bits(interest);
        Ok(())
    }

    fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = fd as usize;
        let Some(&index) = self
            .position
            .get(slot)
            .filter(|&&index| index != NO_POSITION)
        else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        self.fds.swap_remove(index as usize);
        self.position[slot] = NO_POSITION;
        if let Some(moved) = self.fds.get(index as usize) {
            // A disarmed entry stores !fd; recover the fd either way.
            let moved_fd = if moved.fd < 0 { !moved.fd } else { moved.fd };
            self.position[moved_fd as usize] = index;
        }
        Ok(())
    }

    fn disarm(&mut self, fd: RawFd) {
        if let Some(entry) = self.entry(fd) {
            entry.fd = !fd;
        }
    }

    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        _max_events: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let timeout_ms = match timeout {
            None => -1,
            Some(timeout) => timeout
                .as_nanos()
                .div_ceil(1_000_000)
                .min(libc::c_int::MAX as u128) as libc::c_int,
        };
        // SAFETY: `fds` is a live, writable array of exactly `fds.len()` pollfd entries.
        let ready = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        let mut remaining = cvt(ready)? as usize;
        // poll(2) counts the entries with non-zero revents: stop scanning once all are found.
        for entry in &self.fds {
            if remaining == 0 {
                break;
            }
            if entry.revents != 0 {
                remaining -= 1;
                events.push(Event::new(
                    entry.fd,
                    Ready::from_kernel_bits(entry.revents as u16 as u32),
                ));
            }
        }
        Ok(())
    }

    fn close(self) -> io::Result<()> {
        Ok(())
    }
}

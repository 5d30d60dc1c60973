//! iomux: event-driven network IO from the system calls up, in layers; each layer uses only the ones
//! before it.
//!
//! 1. [`selector`] — one API over `select(2)`, `poll(2)` and `epoll(7)` (Python's `selectors`): register
//!    fds with an interest and your data, wait, and get back what is ready. Level, edge and oneshot
//!    triggering; a waker for other threads. The system calls themselves live in a private `sys`
//!    module, the only place with `unsafe`.
//!
//! Linux is the supported platform; select and poll compile on any Unix.

#![cfg(unix)]

pub mod selector;
#[allow(unsafe_code)]
mod sys;

pub use sys::fd::{nofile_limit, raise_nofile_limit};

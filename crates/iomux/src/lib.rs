//! iomux: event-driven network IO from the system calls up, in layers; each layer uses only the ones
//! before it.
//!
//! 1. [`selector`] — one API over `select(2)`, `poll(2)` and `epoll(7)` (Python's `selectors`): register
//!    fds with an interest and your data, wait, and get back what is ready. Level, edge and oneshot
//!    triggering; a waker for other threads. The system calls themselves live in a private `sys`
//!    module, the only place with `unsafe`.
//!
//! 4. Servers: [`http`] — the protocol core of `iomux http`, an HTTP/1.1 static file server (RFC 9110,
//!    RFC 9112): request heads parsed with limits (414, 431, 400), paths confined to the document root
//!    (percent-decoded once, `..` resolved lexically, symbolic links checked by the kernel with
//!    `openat2`), conditional requests (ETag, 304), byte ranges (206, 416), directory listings, and
//!    response heads written into reusable buffers. It decides every response without doing any socket
//!    IO, so the per-connection state machine on the event loop only moves bytes (Linux only).
//!
//! Linux is the supported platform; select and poll compile on any Unix.

#![cfg(unix)]

#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod http;
pub mod selector;
#[allow(unsafe_code)]
mod sys;

pub use sys::fd::{nofile_limit, raise_nofile_limit};

//! iomux: event-driven network IO from the system calls up, in layers; each layer uses only the ones
//! before it.
//!
//! 1. [`selector`] — one API over `select(2)`, `poll(2)` and `epoll(7)` (Python's `selectors`): register
//!    fds with an interest and your data, wait, and get back what is ready. Level, edge and oneshot
//!    triggering; a waker for other threads. The system calls themselves live in a private `sys`
//!    module, the only place with `unsafe`.
//! 2. [`event_loop`] — the callback model (the seeds' `sel.register(sock, EVENT_READ, accept)`, and
//!    asyncio's loop): an [`EventLoop`](event_loop::EventLoop) over any selector backend that owns each
//!    registered source with its handler (a closure, or your own statically dispatched type) and calls
//!    it when the source is ready; `call_soon`; cancelable timers on an indexed heap; `SIGINT` /
//!    `SIGTERM` as ordinary callbacks; a `Send` handle to queue work and stop the loop from other
//!    threads; `run`, `run_until` and `stop`.
//! 3. [`runtime`] — the coroutine model (the seeds' asyncio tasks and gevent `spawn` / `joinall` /
//!    `sleep`): a single-threaded executor whose reactor sits directly on a [`selector::Selector`] of
//!    any backend — edge-triggered on epoll, oneshot on select and poll — with `block_on`, `spawn` and
//!    abortable join handles, `join_all`, `yield_now`, `sleep` and `timeout` on a timer heap, wakers
//!    that work from any thread, and a thread-per-core mode ([`runtime::workers`]) sharing a port
//!    through `SO_REUSEPORT`.
//!
//!    [`net`] holds its sockets: async `TcpListener`, `TcpStream` (implementing `futures-io`'s
//!    `AsyncRead` and `AsyncWrite`, so `futures-lite`'s helpers work) and `UdpSocket`, over IPv4 and
//!    IPv6, never raising SIGPIPE and surviving fd exhaustion in `accept`.
//! 4. Servers: [`echo`] — the echo server of `iomux echo` (bytes back unchanged or uppercased, TCP or
//!    UDP) in three models side by side: callbacks on the event loop, a coroutine per connection on
//!    the runtime, and a blocking thread per connection as the baseline; partial writes, bounded
//!    output per connection, half-close, fd exhaustion and select's fd ceiling handled, with workers
//!    sharing a port.
//!
//!    [`http`] — the protocol core of `iomux http`, an HTTP/1.1 static file server (RFC 9110,
//!    RFC 9112): request heads parsed with limits (414, 431, 400), paths confined to the document root
//!    (percent-decoded once, `..` resolved lexically, symbolic links checked by the kernel with
//!    `openat2`), conditional requests (ETag, 304), byte ranges (206, 416), directory listings, and
//!    response heads written into reusable buffers. It decides every response without doing any socket
//!    IO, so the per-connection state machine on the event loop only moves bytes: keep-alive and
//!    pipelining, `sendfile`, header and keep-alive timeouts, connection limits, an access log,
//!    thread-per-core workers on `SO_REUSEPORT` listeners and a graceful shutdown
//!    ([`http::Server`]; Linux only).
//!
//! Linux is the supported platform; select and poll compile on any Unix.

#![cfg(unix)]

pub mod echo;
pub mod event_loop;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod http;
pub mod net;
pub mod runtime;
pub mod selector;
#[allow(unsafe_code)]
mod sys;

pub use sys::fd::{nofile_limit, raise_nofile_limit};

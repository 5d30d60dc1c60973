//! The HTTP/1.1 static file server's protocol core (RFC 9110, RFC 9112): everything between the bytes
//! a connection has read and the bytes it must write, with no event loop in sight. Layer 4, servers.
//!
//! A connection uses three calls:
//!
//! 1. [`parse`] the bytes read so far: [`Parse::Partial`] (read more), a [`Request`] with the length
//!    of its head, or an [`Error`] to answer with [`reject`] before closing.
//! 2. [`Site::respond`] to a request: the response head (and any in-memory body) is appended to a
//!    reusable buffer, and the returned [`Response`] names the rest — nothing, or a range of an open
//!    file ([`Body::File`]) to send with `sendfile(2)` or, when small, to read into the same buffer
//!    ([`FileBody::read_into`]) for a single write.
//! 3. Drop the request's [`head_len`](Request::head_len) bytes and its
//!    [`body_len`](Request::body_len) body bytes (read and discarded) from the input, and go on with
//!    the next pipelined request if [`Response::keep_alive`]; otherwise close once the response is
//!    written (after a rejected request unread bytes may remain: shut down the write side and drain
//!    briefly before closing, or the kernel's reset can destroy the response in flight).
//!
//! ```
//! use iomux::http::{parse, Body, Config, Parse, Site};
//!
//! let root = std::env::temp_dir();
//! let site = Site::new(Config::new(&root))?;
//! let mut out = Vec::new();
//! let input = b"GET /no-such-file HTTP/1.1\r\nHost: localhost\r\n\r\n";
//! let Parse::Complete(request) = parse(input)? else { unreachable!("the head is complete") };
//! let response = site.respond(&request, &mut out);
//! assert_eq!(response.status.code(), 404);
//! assert!(matches!(response.body, Body::Buffered));
//! assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
//! # Ok::<(), iomux::http::Error>(())
//! ```
//!
//! [`Server`] runs those calls on the callback event loop: [`Server::bind`] opens the root and the
//! listeners, [`Server::start`] runs one worker thread per listener, and a [`ShutdownHandle`] (or
//! `SIGINT` / `SIGTERM`) shuts it down gracefully.
//!
//! The pieces: `request.rs` (parsing and limits), `path.rs` (root confinement; its docs explain the
//! `openat2` choice), `cache.rs` (small files kept per worker, revalidated by one `statx` per
//! request), `conditional.rs` (ETag, 304, If-Range), `range.rs` (byte ranges and the
//! multi-range policy), `listing.rs` (directory listings), `response.rs` (routing and writing heads),
//! `error.rs` (the status table); then `conn.rs` (the per-connection state machine: buffers,
//! pipelining, timeouts, partial writes, `sendfile`), `server.rs` (listeners, accepting, workers,
//! connection limits, shutdown) and `access_log.rs` (the common-log-format access log).

mod access_log;
mod cache;
mod conditional;
mod conn;
mod error;
mod listing;
mod path;
mod range;
mod request;
mod response;
mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use error::Error;
pub use request::{
    MAX_DISCARDED_BODY, MAX_HEAD, MAX_REQUEST_LINE, Method, Parse, Request, Version, parse,
};
pub use response::{Body, FileBody, Response, Status, reject};
pub use server::{ACCEPT_RETRY, Options, Running, Server, ShutdownHandle};

use path::Root;

/// Files up to this size are best sent with the head in one write ([`FileBody::read_into`]); larger
/// ones with `sendfile(2)`.
pub const SMALL_FILE_LIMIT: u64 = 64 * 1024;

/// The server's options (the `iomux http` flags other than address, backend and workers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The document root; nothing outside it is ever served.
    pub root: PathBuf,
    /// Serve an HTML listing for a directory without `index.html` (otherwise 404).
    pub listing: bool,
    /// Follow symbolic links that lead outside the root (otherwise such paths are 404).
    pub follow_symlinks: bool,
    /// Serve dotfiles and list them (otherwise any path segment starting with `.` is 404).
    pub show_hidden: bool,
    /// Send large files with `sendfile(2)`; off for file systems where it does not work.
    pub sendfile: bool,
    /// How long a request head may take to arrive, from its first byte (slowloris guard); then 408.
    pub header_timeout: Duration,
    /// How long a connection with no request pending stays open.
    pub keepalive_timeout: Duration,
    /// The most connections open at once; `None` means `RLIMIT_NOFILE` − 64.
    pub max_connections: Option<usize>,
    /// How long a graceful shutdown waits for in-flight responses.
    pub shutdown_timeout: Duration,
    /// No access log on stdout.
    pub quiet: bool,
}

impl Config {
    /// The defaults for serving `root`: no listing, no links out, no dotfiles, `sendfile` on, header
    /// timeout 10 s, keep-alive timeout 15 s, connection limit from `RLIMIT_NOFILE`, shutdown timeout
    /// 10 s, access log on.
    pub fn new(root: impl AsRef<Path>) -> Config {
        Config {
            root: root.as_ref().to_owned(),
            listing: false,
            follow_symlinks: false,
            show_hidden: false,
            sendfile: true,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(15),
            max_connections: None,
            shutdown_timeout: Duration::from_secs(10),
            quiet: false,
        }
    }
}

impl Default for Config {
    /// The defaults of [`Config::new`] with the current directory as the root, as
    /// `python3 -m http.server` has.
    fn default() -> Config {
        Config::new(".")
    }
}

/// A [`Config`] with its document root open: what a server shares between its connections and
/// workers (it is `Send + Sync`; put it in an `Arc`).
#[derive(Debug)]
pub struct Site {
    /// The options in force.
    config: Config,
    /// The open root directory.
    root: Root,
    /// Unique among the sites of the process: a thread's file cache holds one site's files.
    id: u64,
}

impl Site {
    /// Opens `config.root` and probes how files under it can be opened safely.
    ///
    /// # Errors
    ///
    /// [`Error::Root`] when the root does not exist, is not a directory or cannot be read.
    pub fn new(config: Config) -> Result<Site, Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let root = Root::open(&config.root, config.follow_symlinks)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Site { config, root, id })
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decides the response to `request` and appends its head — and an in-memory body (error page,
    /// listing, redirect note, cached small file) if it has one — to `out`, which is not cleared, so
    /// pipelined responses can share one write. Every outcome, errors included, is a response.
    ///
    /// Small files (up to [`SMALL_FILE_LIMIT`]) are kept in a cache per thread, and a cached file is
    /// served only while one `statx` shows it unchanged (same inode, size, modification and change
    /// times), so a replaced file is never served stale; a file in the root directory itself costs
    /// that one `statx`, a deeper one a confined open and its `fstat`. Other files are opened once
    /// and described by one `fstat` of the open file.
    pub fn respond(&self, request: &Request<'_>, out: &mut Vec<u8>) -> Response {
        response::respond(self, request, out)
    }

    pub(crate) fn root(&self) -> &Root {
        &self.root
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults() {
        let config = Config::default();
        assert_eq!(config.root, Path::new("."));
        assert!(
            config.sendfile && !config.listing && !config.show_hidden && !config.follow_symlinks
        );
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.keepalive_timeout, Duration::from_secs(15));
    }

    #[test]
    fn a_missing_root_is_a_root_error() {
        let error = Site::new(Config::new("/nonexistent/iomux-root")).unwrap_err();
        assert!(matches!(error, Error::Root { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/iomux-root"));
    }

    #[test]
    fn a_file_root_is_a_root_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let error = Site::new(Config::new(file.path())).unwrap_err();
        assert!(matches!(error, Error::Root { .. }), "{error}");
    }

    #[test]
    fn site_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Site>();
    }
}

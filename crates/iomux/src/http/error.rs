//! [`Error`], everything a request can fail with, and [`Error::status`], the one place that maps an
//! error to its HTTP status. Layer 4, the HTTP server.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::response::Status;

/// Why a request cannot be served as asked, with the facts needed to log it.
///
/// Every variant has exactly one status, given by [`Error::status`]; that match is the server's whole
/// status table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request head breaks the HTTP/1.1 grammar (RFC 9112 §2–§5), or its target is not in origin or
    /// absolute form.
    #[error("malformed request: {reason}")]
    Malformed {
        /// What was wrong, e.g. "invalid header name".
        reason: &'static str,
    },
    /// An HTTP/1.1 request came without a `Host` header (RFC 9112 §3.2).
    #[error("an HTTP/1.1 request must carry a Host header")]
    MissingHost,
    /// A GET or HEAD request carried `Transfer-Encoding`, which such requests never need; refused so a
    /// body can never be mis-framed as the next request (RFC 9112 §6.1).
    #[error("transfer-encoding is not accepted on GET or HEAD requests")]
    TransferEncoding,
    /// `Content-Length` is not a number, or appears with different values (RFC 9110 §8.6).
    #[error("invalid content-length: {value}")]
    InvalidContentLength {
        /// The offending field value, lossily decoded.
        value: String,
    },
    /// The request path cannot name a file under the root: a malformed percent-escape, an encoded `/`
    /// inside a segment, a backslash, a NUL byte, or `..` climbing above the root.
    #[error("bad request path: {reason}")]
    BadPath {
        /// What was wrong with the path.
        reason: &'static str,
    },
    /// Nothing servable exists at the path (also: not a regular file or directory, or not readable).
    #[error("not found")]
    NotFound,
    /// The path names a dotfile and hidden files are not shown (`show_hidden` is off).
    #[error(
        "not found: the path names a hidden file; the server was started without --show-hidden"
    )]
    Hidden,
    /// The path leads outside the root through a symbolic link and `follow_symlinks` is off.
    #[error(
        "not found: the path leads outside the root through a symbolic link; the server was started without --follow-symlinks"
    )]
    OutsideRoot,
    /// A known method other than GET and HEAD (RFC 9110 §15.5.6); answered with `Allow: GET, HEAD`.
    #[error("method {method} is not allowed; only GET and HEAD are")]
    MethodNotAllowed {
        /// The method as sent.
        method: &'static str,
    },
    /// The request head did not arrive in full before the header timeout (slowloris).
    #[error("the request head did not arrive within {timeout:?}")]
    HeaderTimeout {
        /// The header timeout in force.
        timeout: Duration,
    },
    /// The request announced a body larger than the server reads and discards.
    #[error("a request body of {length} bytes is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The announced `Content-Length`.
        length: u64,
        /// The largest body the server reads and discards.
        limit: u64,
    },
    /// The request line had no end within the limit.
    #[error("the request line is longer than {limit} bytes")]
    UriTooLong {
        /// The longest request line accepted, in bytes.
        limit: usize,
    },
    /// The single byte range asked for starts at or beyond the end of the file (RFC 9110 §14.1.1).
    #[error("the requested range is not satisfiable for a length of {length} bytes")]
    RangeNotSatisfiable {
        /// The file's length, sent back in `Content-Range: bytes */length`.
        length: u64,
    },
    /// The request head is larger than the limit, or has more header lines than the parser holds.
    #[error("the request head is larger than {limit} bytes or has too many header lines")]
    HeadTooLarge {
        /// The largest head accepted, in bytes.
        limit: usize,
    },
    /// A method this server does not know (RFC 9110 §15.6.2).
    #[error("method {method:?} is not implemented")]
    NotImplemented {
        /// The method as sent.
        method: String,
    },
    /// The operating system failed while serving a request (e.g. out of file descriptors).
    #[error("{operation} failed")]
    Io {
        /// What was being done, e.g. "open", "fstat", "read directory".
        operation: &'static str,
        /// What the system call returned.
        #[source]
        source: io::Error,
    },
    /// The document root cannot be opened as a directory (when building a [`Site`](super::Site)).
    #[error("cannot open the document root {}; check that it exists and is a readable directory", path.display())]
    Root {
        /// The root as configured.
        path: PathBuf,
        /// What the system call returned.
        #[source]
        source: io::Error,
    },
    /// The server cannot listen on its address (when binding a [`Server`](super::Server)).
    #[error("cannot listen on {address}; check that the address is local and the port is free")]
    Bind {
        /// The address asked for (port 0 is resolved after the first worker's listener bound).
        address: SocketAddr,
        /// What the system call returned (e.g. EADDRINUSE).
        #[source]
        source: io::Error,
    },
    /// A worker's event loop could not be built or failed while running.
    #[error("worker {worker}'s event loop failed")]
    EventLoop {
        /// The worker's index, from 0.
        worker: usize,
        /// The loop's error.
        #[source]
        source: crate::event_loop::Error,
    },
    /// A worker thread could not be started, or panicked.
    #[error("worker {worker} {what}")]
    Worker {
        /// The worker's index, from 0.
        worker: usize,
        /// What happened, e.g. "panicked: index out of bounds".
        what: String,
    },
}

impl Error {
    /// The HTTP status this error is answered with — the server's status table.
    ///
    /// [`Error::Io`] and the server's own failures ([`Error::Root`], [`Error::Bind`],
    /// [`Error::EventLoop`], [`Error::Worker`]) map to 500.
    pub fn status(&self) -> Status {
        match self {
            Error::Malformed { .. }
            | Error::MissingHost
            | Error::TransferEncoding
            | Error::InvalidContentLength { .. }
            | Error::BadPath { .. } => Status::BadRequest,
            Error::NotFound | Error::Hidden | Error::OutsideRoot => Status::NotFound,
            Error::MethodNotAllowed { .. } => Status::MethodNotAllowed,
            Error::HeaderTimeout { .. } => Status::RequestTimeout,
            Error::BodyTooLarge { .. } => Status::ContentTooLarge,
            Error::UriTooLong { .. } => Status::UriTooLong,
            Error::RangeNotSatisfiable { .. } => Status::RangeNotSatisfiable,
            Error::HeadTooLarge { .. } => Status::RequestHeaderFieldsTooLarge,
            Error::NotImplemented { .. } => Status::NotImplemented,
            Error::Io { .. }
            | Error::Root { .. }
            | Error::Bind { .. }
            | Error::EventLoop { .. }
            | Error::Worker { .. } => Status::InternalServerError,
        }
    }

    /// Whether the connection must close after the error response.
    ///
    /// True for everything [`parse`](super::parse) rejects and for the header timeout: the request's
    /// framing cannot be trusted, so no further request may be read from the connection. False for
    /// errors found while routing a well-framed request, which keep the request's keep-alive.
    pub fn closes_connection(&self) -> bool {
        match self {
            Error::Malformed { .. }
            | Error::MissingHost
            | Error::TransferEncoding
            | Error::InvalidContentLength { .. }
            | Error::MethodNotAllowed { .. }
            | Error::HeaderTimeout { .. }
            | Error::BodyTooLarge { .. }
            | Error::UriTooLong { .. }
            | Error::HeadTooLarge { .. }
            | Error::NotImplemented { .. }
            | Error::Root { .. }
            | Error::Bind { .. }
            | Error::EventLoop { .. }
            | Error::Worker { .. } => true,
            Error::BadPath { .. }
            | Error::NotFound
            | Error::Hidden
            | Error::OutsideRoot
            | Error::RangeNotSatisfiable { .. }
            | Error::Io { .. } => false,
        }
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::Io { source, .. } | Error::Root { source, .. } | Error::Bind { source, .. } => {
                source.kind()
            }
            Error::EventLoop { source, .. } => source
                .os_error()
                .map_or(io::ErrorKind::Other, io::Error::kind),
            Error::NotFound | Error::Hidden | Error::OutsideRoot => io::ErrorKind::NotFound,
            Error::HeaderTimeout { .. } => io::ErrorKind::TimedOut,
            Error::MethodNotAllowed { .. } | Error::NotImplemented { .. } => {
                io::ErrorKind::Unsupported
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_covers_the_protocol_statuses() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::Malformed { reason: "x" }, 400),
            (Error::MissingHost, 400),
            (Error::TransferEncoding, 400),
            (
                Error::InvalidContentLength {
                    value: "x".to_owned(),
                },
                400,
            ),
            (Error::BadPath { reason: "x" }, 400),
            (Error::NotFound, 404),
            (Error::Hidden, 404),
            (Error::OutsideRoot, 404),
            (Error::MethodNotAllowed { method: "POST" }, 405),
            (
                Error::HeaderTimeout {
                    timeout: Duration::from_secs(10),
                },
                408,
            ),
            (
                Error::BodyTooLarge {
                    length: 1 << 20,
                    limit: 1 << 16,
                },
                413,
            ),
            (Error::UriTooLong { limit: 4096 }, 414),
            (Error::RangeNotSatisfiable { length: 10 }, 416),
            (Error::HeadTooLarge { limit: 8192 }, 431),
            (
                Error::NotImplemented {
                    method: "BREW".to_owned(),
                },
                501,
            ),
            (
                Error::Io {
                    operation: "open",
                    source: io::Error::from_raw_os_error(libc::EMFILE),
                },
                500,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.status().code(), code, "{error}");
        }
    }

    #[test]
    fn framing_errors_close_and_routing_errors_do_not() {
        assert!(Error::UriTooLong { limit: 4096 }.closes_connection());
        assert!(Error::MethodNotAllowed { method: "PUT" }.closes_connection());
        assert!(!Error::NotFound.closes_connection());
        assert!(!Error::RangeNotSatisfiable { length: 1 }.closes_connection());
    }

    #[test]
    fn converts_into_io_error_with_a_fitting_kind() {
        let error: io::Error = Error::NotFound.into();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let error: io::Error = Error::HeaderTimeout {
            timeout: Duration::from_secs(1),
        }
        .into();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("did not arrive"));
    }
}

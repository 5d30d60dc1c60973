//! Deciding and writing responses: [`Site::respond`](super::Site::respond) routes a parsed request
//! to a file, a range of it, a 304, a redirect, a listing or an error page, and [`reject`] answers a
//! request that could not be parsed. Both append the response head — and any in-memory body — to a
//! caller's reusable buffer and return a [`Response`] saying what else to send. Layer 4, the HTTP
//! server.
//!
//! The head is built in place: status lines are static strings, `Date` is formatted once per second
//! per thread, numbers and dates are written straight into the buffer, and the path scratch space is
//! reused per thread, so serving a file allocates nothing once the buffers have grown. Small files
//! come from the thread's [`cache`](super::cache) while one `statx` per request shows them unchanged;
//! any other file is opened once per request and described by one `fstat` of that open file, so a
//! replaced file is never served from stale metadata or bytes.

use std::cell::{Cell, RefCell};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cache::{self, Entry, Facts, FileCache};
use super::conditional::{self, LAST_FORMATTABLE_SECOND, Validators};
use super::listing::{self, push_escaped};
use super::path::{self, push_encoded};
use super::range::{self, Ranges};
use super::request::{Method, Request, Version};
use super::{Error, SMALL_FILE_LIMIT, Site};
use crate::sys::fs::OpenKind;
use crate::sys::stat::FileStat;

/// The statuses this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 200: the whole file or a listing.
    Ok,
    /// 206: one byte range of the file.
    PartialContent,
    /// 301: a directory asked for without its trailing slash.
    MovedPermanently,
    /// 304: the client's copy is current.
    NotModified,
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 405, with `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// 408: the head did not arrive in time.
    RequestTimeout,
    /// 413: the request body is over the discard limit.
    ContentTooLarge,
    /// 414: the request line is over its limit.
    UriTooLong,
    /// 416, with `Content-Range: bytes */length`.
    RangeNotSatisfiable,
    /// 431: the head is over its limit.
    RequestHeaderFieldsTooLarge,
    /// 500: the server failed (e.g. out of file descriptors).
    InternalServerError,
    /// 501: an unknown method.
    NotImplemented,
}

impl Status {
    /// The three-digit status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::RequestHeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
        }
    }

    /// The reason phrase of RFC 9110 §15.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
        }
    }

    /// `HTTP/1.1 <code> <reason>\r\n`.
    fn status_line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::PartialContent => b"HTTP/1.1 206 Partial Content\r\n",
            Status::MovedPermanently => b"HTTP/1.1 301 Moved Permanently\r\n",
            Status::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\n",
            Status::ContentTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::RangeNotSatisfiable => b"HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::RequestHeaderFieldsTooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            }
            Status::InternalServerError => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
        }
    }
}

/// What to send after the bytes [`Site::respond`](super::Site::respond) or [`reject`] appended to the
/// caller's buffer, and what to do with the connection afterwards.
#[derive(Debug)]
pub struct Response {
    /// The status sent.
    pub status: Status,
    /// Whether the connection may read another request after this response has been written. False
    /// means: write the response, then close (the head says `Connection: close`).
    pub keep_alive: bool,
    /// What follows the appended bytes.
    pub body: Body,
    /// The length of the body in bytes: the file range, or the in-memory body in the buffer; 0 for HEAD,
    /// 304 and redirects without a body. For the access log.
    pub body_len: u64,
}

/// The body source of a [`Response`].
#[derive(Debug)]
pub enum Body {
    /// Everything is already in the buffer: the head, and after it any in-memory body (an error page, a
    /// listing, a redirect note).
    Buffered,
    /// The head is in the buffer; then send this range of an open file.
    File(FileBody),
}

/// A range of an open file to send after the head, e.g. with `sendfile(2)`.
#[derive(Debug)]
pub struct FileBody {
    /// The file, opened for this request (its metadata gave the head's length and validators).
    pub file: File,
    /// Where the range starts.
    pub offset: u64,
    /// How many bytes to send; never 0, and `offset + len` was within the file at `fstat` time.
    pub len: u64,
}

impl FileBody {
    /// Appends the range to `out` with positioned reads (one `pread(2)` unless interrupted), for small
    /// files sent with the head in one write.
    ///
    /// # Errors
    ///
    /// The read's error; [`io::ErrorKind::UnexpectedEof`] if the file shrank since its `fstat`. After
    /// an error the head already promised a length the body cannot meet: close the connection. `out`
    /// is left as it was.
    pub fn read_into(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        let len =
            usize::try_from(self.len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        out.resize(start + len, 0);
        let result = self.file.read_exact_at(&mut out[start..], self.offset);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

thread_local! {
    /// Per-thread scratch space for the decoded path, reused by every request on the thread.
    static PATH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// Per-thread cache of the `Date` value: the second it is for, and its text.
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    /// Per-thread cache of small files (a server's worker is one thread), revalidated per request.
    static CACHE: RefCell<FileCache> = RefCell::new(FileCache::new());
}

/// Routes `request` and appends the response to `out`; see [`Site::respond`](super::Site::respond).
pub(crate) fn respond(site: &Site, request: &Request<'_>, out: &mut Vec<u8>) -> Response {
    let mut path = PATH.take();
    let start = out.len();
    let result = CACHE.with_borrow_mut(|cache| {
        cache.use_for(site.id());
        route(site, request, &mut path, cache, out)
    });
    PATH.set(path);
    match result {
        Ok(response) => response,
        Err(error) => {
            out.truncate(start);
            let keep_alive = request.keep_alive() && !error.closes_connection();
            write_error(
                &error,
                request.method() == Method::Head,
                keep_alive,
                request.version(),
                out,
            )
        }
    }
}

/// Appends the error response for a request that never got parsed — a [`parse`](super::parse) error
/// or the header timeout — to `out`. `buf` is what was read of the request, used only to leave out
/// the body when it was a HEAD request. The response always closes the connection.
pub fn reject(error: &Error, buf: &[u8], out: &mut Vec<u8>) -> Response {
    let request_line = buf
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .map_or(&[][..], |start| &buf[start..]);
    let head_only = request_line.starts_with(b"HEAD ");
    write_error(error, head_only, false, Version::Http11, out)
}

fn route(
    site: &Site,
    request: &Request<'_>,
    path: &mut Vec<u8>,
    cache: &mut FileCache,
    out: &mut Vec<u8>,
) -> Result<Response, Error> {
    let config = site.config();
    let directory = path::resolve(request.path(), config.show_hidden, path)?;
    if !directory {
        return match find_file(site, path, cache)? {
            Found::Cached(slot) => serve_cached(request, cache.entry(slot), out),
            Found::Known(file, facts) => serve_file(request, Source::Open(file), &facts, out),
            Found::Opened(_, metadata) if metadata.is_dir() => Ok(redirect(request, path, out)),
            Found::Opened(file, metadata) if metadata.is_file() => {
                let facts = facts(&metadata, path);
                serve_file(request, Source::Open(file), &facts, out)
            }
            Found::Opened(..) => Err(Error::NotFound),
        };
    }

    let dir_len = path.len();
    if dir_len > 0 {
        path.push(b'/');
    }
    path.extend_from_slice(b"index.html");
    let index = find_file(site, path, cache);
    path.truncate(dir_len);
    match index {
        Ok(Found::Cached(slot)) => return serve_cached(request, cache.entry(slot), out),
        Ok(Found::Known(file, facts)) => {
            return serve_file(request, Source::Open(file), &facts, out);
        }
        // An index.html that is a directory or a FIFO is no index.
        Ok(Found::Opened(file, metadata)) if metadata.is_file() => {
            let facts = facts(&metadata, b"index.html");
            return serve_file(request, Source::Open(file), &facts, out);
        }
        Ok(Found::Opened(..)) => {}
        Err(error @ Error::Io { .. }) => return Err(error),
        Err(_) => {}
    }
    if !config.listing {
        return Err(Error::NotFound);
    }
    let dir = site.root().open_file(path, OpenKind::Directory)?;
    let head_only = request.method() == Method::Head;
    let start = out.len();
    listing::write(site.root(), config, &dir, path, out)?;
    let body_len = finish_body(out, start, head_only, |out, len| {
        start_head(out, Status::Ok);
        out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\nContent-Length: ");
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
        end_head(out, request.keep_alive(), request.version());
    });
    Ok(Response {
        status: Status::Ok,
        keep_alive: request.keep_alive(),
        body: Body::Buffered,
        body_len,
    })
}

/// What [`find_file`] found under a path.
enum Found {
    /// A cached small file, current: its slot in the cache.
    Cached(usize),
    /// A large regular file, open, whose head fields the cache knew for its current identity.
    Known(File, Facts),
    /// Whatever the path names (a file, a directory, a FIFO…), open, with its `fstat`.
    Opened(File, Metadata),
}

/// Serves a cached small file (its entry holds the bytes).
fn serve_cached(
    request: &Request<'_>,
    entry: &Entry,
    out: &mut Vec<u8>,
) -> Result<Response, Error> {
    let content = entry.content.as_deref().ok_or(Error::NotFound)?;
    serve_file(request, Source::Cached(content), &entry.facts, out)
}

/// Finds what the resolved `path` names: from `cache` when the file is still the one cached, else
/// opened under the root (and cached when it is a small, settled regular file).
///
/// A hit costs one `statx` when `path` is a single segment: a name in the root directory itself,
/// looked up without following a link, so the check cannot leave the root; the entry was filled
/// from a confined open of that very inode, and an equal identity means the same unchanged file
/// (see [`cache`](super::cache)). A deeper path could reach the same inode through a link out of the
/// root (a directory moved out and a link put in its place), so it is always opened under the root
/// — confined as ever — and only its `pread` is saved by the cache. A large file is always opened
/// (it is sent from its fd); the cache only saves working out its head fields again.
fn find_file(site: &Site, path: &mut Vec<u8>, cache: &mut FileCache) -> Result<Found, Error> {
    let single = path::is_single_segment(path);
    let mut seen = None;
    // A path last seen as a large file is opened straight away: a statx first could not spare the
    // open. (Should it now be small, it is cached at the next request, after a statx.)
    if single && !cache.is_large(path) {
        match site.root().stat_entry(path) {
            Ok(stat) => {
                if let Some(slot) = cache.find(path, &stat) {
                    return Ok(Found::Cached(slot));
                }
                seen = Some(stat);
            }
            Err(error) => {
                cache.remove(path);
                if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
                    return Err(Error::NotFound);
                }
                // Anything else: the open below says what it means.
            }
        }
    }
    let file = match site.root().open_file(path, OpenKind::Read) {
        Ok(file) => file,
        Err(error) => {
            cache.remove(path);
            return Err(error);
        }
    };
    let metadata = fstat(&file)?;
    let stat = FileStat::from(&metadata);
    if let Some(slot) = cache.find(path, &stat) {
        let entry = cache.entry(slot);
        if entry.content.is_none() {
            return Ok(Found::Known(file, entry.facts));
        }
        return Ok(Found::Cached(slot));
    }
    if stat.is_file() && stat.size > SMALL_FILE_LIMIT {
        // Its head fields depend only on the identity every request checks with this open's fstat.
        let facts = facts(&metadata, path);
        let entry = Entry {
            stat,
            content: None,
            facts,
        };
        cache.insert(path, entry);
        return Ok(Found::Known(file, facts));
    }
    // Bytes are cached only if the next request's check will see this very file: a single segment
    // must name it directly, not through a link.
    let fillable = stat.is_file()
        && stat.size <= SMALL_FILE_LIMIT
        && (!single || seen == Some(stat))
        && cache::is_settled(&stat);
    if !fillable {
        return Ok(Found::Opened(file, metadata));
    }
    let Ok(length) = usize::try_from(stat.size) else {
        return Ok(Found::Opened(file, metadata));
    };
    let mut content = vec![0; length].into_boxed_slice();
    if file.read_exact_at(&mut content, 0).is_err() {
        // Changed under us: serve it the uncached way, which reports what went wrong.
        return Ok(Found::Opened(file, metadata));
    }
    let entry = Entry {
        stat,
        content: Some(content),
        facts: facts(&metadata, path),
    };
    match cache.insert(path, entry) {
        Some(slot) => Ok(Found::Cached(slot)),
        None => Ok(Found::Opened(file, metadata)),
    }
}

fn fstat(file: &File) -> Result<Metadata, Error> {
    file.metadata().map_err(|source| Error::Io {
        operation: "fstat",
        source,
    })
}

/// The head's facts about the file `metadata` describes; `name` (its path) gives the content type.
fn facts(metadata: &Metadata, name: &[u8]) -> Facts {
    let validators = Validators::new(metadata);
    let (content_type, charset) = content_type(name);
    Facts {
        validators,
        last_modified: format_http_date(validators.modified()),
        length: metadata.len(),
        content_type,
        charset,
    }
}

/// Where a file's bytes come from.
enum Source<'a> {
    /// The file, open: the body is sent from it.
    Open(File),
    /// The whole file, cached: the body is copied after the head.
    Cached(&'a [u8]),
}

/// 200, 206, 304 or 416 for a regular file.
fn serve_file(
    request: &Request<'_>,
    source: Source<'_>,
    facts: &Facts,
    out: &mut Vec<u8>,
) -> Result<Response, Error> {
    let validators = &facts.validators;
    let keep_alive = request.keep_alive();
    if conditional::is_not_modified(request, validators) {
        start_head(out, Status::NotModified);
        push_validators(out, facts);
        end_head(out, keep_alive, request.version());
        return Ok(Response {
            status: Status::NotModified,
            keep_alive,
            body: Body::Buffered,
            body_len: 0,
        });
    }

    let length = facts.length;
    // Range is defined for GET only (RFC 9110 §14.2): HEAD ignores it.
    let ranges = match request.range() {
        Some(value)
            if request.method() == Method::Get
                && request
                    .if_range()
                    .is_none_or(|if_range| conditional::if_range_holds(if_range, validators)) =>
        {
            range::evaluate(value, length)
        }
        _ => Ranges::Full,
    };
    let (status, offset, len) = match ranges {
        Ranges::Full => (Status::Ok, 0, length),
        Ranges::Partial { start, end } => (Status::PartialContent, start, end - start + 1),
        Ranges::Unsatisfiable => return Err(Error::RangeNotSatisfiable { length }),
    };

    start_head(out, status);
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(facts.content_type.as_bytes());
    if facts.charset {
        out.extend_from_slice(b"; charset=utf-8");
    }
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
    push_validators(out, facts);
    out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    if status == Status::PartialContent {
        out.extend_from_slice(b"Content-Range: bytes ");
        push_decimal(out, offset);
        out.push(b'-');
        push_decimal(out, offset + len - 1);
        out.push(b'/');
        push_decimal(out, length);
        out.extend_from_slice(b"\r\n");
    }
    end_head(out, keep_alive, request.version());

    if request.method() == Method::Head || len == 0 {
        return Ok(Response {
            status,
            keep_alive,
            body: Body::Buffered,
            body_len: 0,
        });
    }
    let body = match source {
        Source::Open(file) => Body::File(FileBody { file, offset, len }),
        Source::Cached(content) => {
            // The range lies within the cached file: `range::evaluate` kept it within `length`.
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = usize::try_from(offset + len).unwrap_or(usize::MAX);
            match content.get(start..end) {
                Some(bytes) => out.extend_from_slice(bytes),
                None => return Err(Error::NotFound),
            }
            Body::Buffered
        }
    };
    Ok(Response {
        status,
        keep_alive,
        body,
        body_len: len,
    })
}

/// 301 to the slash form of a directory's path. `Location` is the resolved path, percent-encoded
/// again, so it always starts with exactly one `/` (a raw `//host/dir` could otherwise redirect to
/// another host), followed by the original query: RFC 9110 §10.2.2 leaves it to the server, and the
/// query belongs to the same resource, as Apache's and nginx's directory redirects keep it.
fn redirect(request: &Request<'_>, path: &[u8], out: &mut Vec<u8>) -> Response {
    let start = out.len();
    let push_location = |out: &mut Vec<u8>| {
        out.push(b'/');
        push_encoded(out, path);
        out.push(b'/');
        if let Some(query) = request.query() {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
    };
    out.extend_from_slice(
        b"<!DOCTYPE html>\n<html><head><title>301 Moved Permanently</title></head><body><h1>301 Moved Permanently</h1><p><a href=\"",
    );
    let location_start = out.len();
    push_location(out);
    let location = out[location_start..].to_vec();
    out.truncate(location_start);
    push_escaped(out, &String::from_utf8_lossy(&location));
    out.extend_from_slice(b"\">here</a></p></body></html>\n");
    let head_only = request.method() == Method::Head;
    let body_len = finish_body(out, start, head_only, |out, len| {
        start_head(out, Status::MovedPermanently);
        out.extend_from_slice(b"Location: ");
        push_location(out);
        out.extend_from_slice(b"\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ");
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
        end_head(out, request.keep_alive(), request.version());
    });
    Response {
        status: Status::MovedPermanently,
        keep_alive: request.keep_alive(),
        body: Body::Buffered,
        body_len,
    }
}

/// The error page for `error`, with the fields its status needs (`Allow`, `Content-Range`).
fn write_error(
    error: &Error,
    head_only: bool,
    keep_alive: bool,
    version: Version,
    out: &mut Vec<u8>,
) -> Response {
    let status = error.status();
    let start = out.len();
    let push_title = |out: &mut Vec<u8>| {
        push_decimal(out, u64::from(status.code()));
        out.push(b' ');
        out.extend_from_slice(status.reason().as_bytes());
    };
    out.extend_from_slice(b"<!DOCTYPE html>\n<html><head><title>");
    push_title(out);
    out.extend_from_slice(b"</title></head><body><h1>");
    push_title(out);
    out.extend_from_slice(b"</h1></body></html>\n");
    let body_len = finish_body(out, start, head_only, |out, len| {
        start_head(out, status);
        out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\nContent-Length: ");
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
        match error {
            Error::MethodNotAllowed { .. } => out.extend_from_slice(b"Allow: GET, HEAD\r\n"),
            Error::RangeNotSatisfiable { length } => {
                out.extend_from_slice(b"Content-Range: bytes */");
                push_decimal(out, *length);
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        end_head(out, keep_alive, version);
    });
    Response {
        status,
        keep_alive,
        body: Body::Buffered,
        body_len,
    }
}

/// Puts a head before the body written at `out[start..]`: `head` appends the head given the body's
/// length, then the two are swapped in place. For HEAD the body is dropped. Returns the body bytes
/// left in `out`.
fn finish_body(
    out: &mut Vec<u8>,
    start: usize,
    head_only: bool,
    head: impl FnOnce(&mut Vec<u8>, u64),
) -> u64 {
    let body_len = out.len() - start;
    if head_only {
        out.truncate(start);
        head(out, body_len as u64);
        return 0;
    }
    head(out, body_len as u64);
    let head_len = out.len() - start - body_len;
    out[start..].rotate_right(head_len);
    body_len as u64
}

fn start_head(out: &mut Vec<u8>, status: Status) {
    out.extend_from_slice(status.status_line());
    out.extend_from_slice(b"Date: ");
    push_now(out);
    out.extend_from_slice(b"\r\nServer: iomux\r\n");
}

fn end_head(out: &mut Vec<u8>, keep_alive: bool, version: Version) {
    match (keep_alive, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn push_validators(out: &mut Vec<u8>, facts: &Facts) {
    out.extend_from_slice(b"Last-Modified: ");
    out.extend_from_slice(&facts.last_modified);
    out.extend_from_slice(b"\r\nETag: ");
    out.extend_from_slice(facts.validators.etag());
    out.extend_from_slice(b"\r\n");
}

/// The media type guessed from the extension of the last segment of `name`, and whether
/// `; charset=utf-8` follows it (text types, JavaScript and JSON); unknown is
/// `application/octet-stream`.
fn content_type(name: &[u8]) -> (&'static str, bool) {
    let file_name = name.rsplit(|&byte| byte == b'/').next().unwrap_or(name);
    let extension = match file_name.iter().rposition(|&byte| byte == b'.') {
        Some(dot) if dot > 0 => &file_name[dot + 1..],
        _ => &[][..],
    };
    let media_type = std::str::from_utf8(extension)
        .ok()
        .and_then(|extension| mime_guess::from_ext(extension).first_raw())
        .unwrap_or("application/octet-stream");
    let charset = media_type.starts_with("text/")
        || media_type == "application/javascript"
        || media_type == "application/json";
    (media_type, charset)
}

/// Appends the current time as an HTTP date, formatted at most once per second per thread.
fn push_now(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (cached, mut text) = DATE.get();
    if cached != now {
        text = format_http_date(now);
        DATE.set((now, text));
    }
    out.extend_from_slice(&text);
}

/// Appends `seconds` since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn push_http_date(out: &mut Vec<u8>, seconds: u64) {
    out.extend_from_slice(&format_http_date(seconds));
}

fn format_http_date(seconds: u64) -> [u8; 29] {
    use std::io::Write;
    // httpdate panics outside 1970..=9999, so the time is clamped first.
    let time = UNIX_EPOCH + Duration::from_secs(seconds.min(LAST_FORMATTABLE_SECOND));
    let mut text = [b' '; 29];
    let written = write!(&mut text[..], "{}", httpdate::HttpDate::from(time));
    debug_assert!(written.is_ok(), "an IMF-fixdate is always 29 bytes");
    text
}

/// Appends `value` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_agree_with_codes_and_reasons() {
        let all = [
            Status::Ok,
            Status::PartialContent,
            Status::MovedPermanently,
            Status::NotModified,
            Status::BadRequest,
            Status::NotFound,
            Status::MethodNotAllowed,
            Status::RequestTimeout,
            Status::ContentTooLarge,
            Status::UriTooLong,
            Status::RangeNotSatisfiable,
            Status::RequestHeaderFieldsTooLarge,
            Status::InternalServerError,
            Status::NotImplemented,
        ];
        for status in all {
            let expected = format!("HTTP/1.1 {} {}\r\n", status.code(), status.reason());
            assert_eq!(status.status_line(), expected.as_bytes());
        }
    }

    #[test]
    fn decimals() {
        let mut out = Vec::new();
        for value in [0, 7, 10, 65536, u64::MAX] {
            out.clear();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }

    #[test]
    fn dates_are_clamped_instead_of_panicking() {
        let mut out = Vec::new();
        push_http_date(&mut out, 784_111_777);
        assert_eq!(out, b"Sun, 06 Nov 1994 08:49:37 GMT");
        out.clear();
        push_http_date(&mut out, u64::MAX);
        assert_eq!(out, b"Fri, 31 Dec 9999 23:59:59 GMT");
        out.clear();
        push_http_date(&mut out, 0);
        assert_eq!(out, b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn the_date_header_is_current() {
        let mut out = Vec::new();
        push_now(&mut out);
        let date = httpdate::parse_http_date(std::str::from_utf8(&out).unwrap()).unwrap();
        let skew = SystemTime::now()
            .duration_since(date)
            .unwrap_or_else(|error| error.duration());
        assert!(skew < Duration::from_secs(5));
    }

    #[test]
    fn content_types() {
        let cases: [(&[u8], &str); 9] = [
            (b"index.html", "text/html; charset=utf-8"),
            (b"a/style.css", "text/css; charset=utf-8"),
            (b"app.js", "text/javascript; charset=utf-8"),
            (b"data.json", "application/json; charset=utf-8"),
            (b"dir.v2/logo.PNG", "image/png"),
            (b"README", "application/octet-stream"),
            (b"dir.d/README", "application/octet-stream"),
            (b".bashrc", "application/octet-stream"),
            (b"x.\xff", "application/octet-stream"),
        ];
        for (name, expected) in cases {
            let (media_type, charset) = content_type(name);
            let text = if charset {
                format!("{media_type}; charset=utf-8")
            } else {
                media_type.to_owned()
            };
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn reject_closes_and_omits_the_body_for_head() {
        let mut out = Vec::new();
        let response = reject(&Error::UriTooLong { limit: 4096 }, b"GET /aaaa", &mut out);
        assert_eq!(response.status, Status::UriTooLong);
        assert!(!response.keep_alive);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body.len() as u64, response.body_len);
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(body.contains("<h1>414 URI Too Long</h1>"));

        out.clear();
        let response = reject(
            &Error::MissingHost,
            b"\r\nHEAD / HTTP/1.1\r\n\r\n",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "HEAD gets no body: {text}");
        assert_eq!(response.body_len, 0);
        assert!(text.contains("Content-Length: "));
    }

    #[test]
    fn method_not_allowed_says_allow() {
        let mut out = Vec::new();
        reject(
            &Error::MethodNotAllowed { method: "POST" },
            b"POST /",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 "));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
    }

    #[test]
    fn responses_append_to_the_buffer() {
        let mut out = b"earlier".to_vec();
        reject(&Error::NotFound, b"", &mut out);
        assert!(out.starts_with(b"earlierHTTP/1.1 404 Not Found\r\n"));
    }

    /// Answers `GET path` from `site` on this thread; returns the status and the whole output.
    fn get(site: &Site, path: &str) -> (u16, Vec<u8>) {
        ask(site, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    /// Answers the request head `input` from `site` on this thread.
    fn ask(site: &Site, input: &str) -> (u16, Vec<u8>) {
        let super::super::Parse::Complete(request) = super::super::parse(input.as_bytes()).unwrap()
        else {
            panic!("a complete head");
        };
        let mut out = Vec::new();
        let response = site.respond(&request, &mut out);
        if let Body::File(body) = response.body {
            body.read_into(&mut out).unwrap();
        }
        (response.status.code(), out)
    }

    fn cached() -> (usize, usize) {
        CACHE.with_borrow(|cache| (cache.len(), cache.bytes()))
    }

    #[test]
    fn settled_small_files_are_cached_within_bounds() {
        use super::super::{Config, Site};
        let dir = tempfile::tempdir().unwrap();
        for index in 0..1_100 {
            std::fs::write(dir.path().join(format!("f{index}")), "0123456789").unwrap();
        }
        for index in 0..80 {
            std::fs::write(
                dir.path().join(format!("big{index}")),
                vec![b'b'; 64 * 1024],
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("large"), vec![b'l'; 64 * 1024 + 1]).unwrap();
        std::os::unix::fs::symlink("f0", dir.path().join("link")).unwrap();
        std::thread::sleep(cache::SETTLE + Duration::from_millis(200));
        std::fs::write(dir.path().join("fresh"), "fresh").unwrap();
        let site = Site::new(Config::new(dir.path())).unwrap();

        let (status, out) = get(&site, "/f0");
        assert_eq!(status, 200);
        assert!(out.ends_with(b"\r\n\r\n0123456789"));
        assert_eq!(cached(), (1, 10 + 2), "the bytes and the path");
        let (_, again) = get(&site, "/f0");
        assert_eq!(again, out, "a hit answers the same");
        let text = String::from_utf8(out).unwrap();
        let etag = text
            .split("\r\n")
            .find_map(|line| line.strip_prefix("ETag: "))
            .unwrap();
        let (status, range) = ask(
            &site,
            "GET /f0 HTTP/1.1\r\nHost: x\r\nRange: bytes=2-4\r\n\r\n",
        );
        assert_eq!(status, 206);
        assert!(range.ends_with(b"\r\nContent-Range: bytes 2-4/10\r\n\r\n234"));
        let (status, head) = ask(&site, "HEAD /f0 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, 200);
        assert!(
            head.ends_with(b"Accept-Ranges: bytes\r\n\r\n"),
            "no body for HEAD"
        );
        let conditional = format!("GET /f0 HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n");
        let (status, _) = ask(&site, &conditional);
        assert_eq!(status, 304);
        assert_eq!(cached().0, 1, "all from the one entry");
        for path in ["/link", "/fresh", "/missing"] {
            get(&site, path);
            assert_eq!(cached().0, 1, "{path} is not cached");
        }
        let (_, large) = get(&site, "/large");
        assert_eq!(cached(), (2, 12 + 5), "a large file's entry holds no bytes");
        assert_eq!(get(&site, "/large").1, large);
        for index in 0..1_100 {
            assert_eq!(get(&site, &format!("/f{index}")).0, 200);
            let (entries, bytes) = cached();
            assert!(entries <= cache::MAX_ENTRIES && bytes <= cache::MAX_BYTES);
        }
        assert_eq!(cached().0, cache::MAX_ENTRIES);
        for index in 0..80 {
            let (status, out) = get(&site, &format!("/big{index}"));
            assert_eq!(status, 200);
            assert!(out.ends_with(&[b'b'; 64 * 1024]));
            let (entries, bytes) = cached();
            assert!(entries <= cache::MAX_ENTRIES && bytes <= cache::MAX_BYTES);
        }
        assert!(
            cached().1 > cache::MAX_BYTES / 2,
            "the byte limit is what bounds it: {:?}",
            cached()
        );

        // Another site on the same thread never sees these entries.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("f0"), "other site").unwrap();
        let other = Site::new(Config::new(other.path())).unwrap();
        assert!(get(&other, "/f0").1.ends_with(b"other site"));
        assert_eq!(cached(), (0, 0));
    }

    #[test]
    fn read_into_reads_the_range_or_reports_a_short_file() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let body = FileBody {
            file,
            offset: 3,
            len: 4,
        };
        let mut out = b"head".to_vec();
        body.read_into(&mut out).unwrap();
        assert_eq!(out, b"head3456");
        let short = FileBody {
            offset: 8,
            len: 4,
            ..body
        };
        let error = short.read_into(&mut out).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"head3456");
    }
}

//! Request-head parsing: [`parse`] turns the bytes a connection has read so far into "need more", a
//! [`Request`] borrowing those bytes, or the [`Error`] to answer with. Layer 4, the HTTP server.
//!
//! The buffer may end inside a head, or hold several pipelined requests; `parse` looks only at the
//! first head and reports its length, so the caller knows where the next request begins. The checks
//! run in a fixed order, so the same bytes give the same answer however they were split across reads:
//! a request line longer than [`MAX_REQUEST_LINE`] is 414 (checked first, before the line has ended,
//! unless its first [`MAX_REQUEST_LINE`] bytes already break the grammar), a head longer than
//! [`MAX_HEAD`] is 431 (only its first [`MAX_HEAD`] bytes are parsed), a head that breaks the grammar
//! is 400; then the method (405 or 501), `Host`, the framing headers and the body limit.

use std::mem::MaybeUninit;

use super::Error;

/// The longest request line accepted, in bytes, without its line ending; longer is 414.
pub const MAX_REQUEST_LINE: usize = 4096;

/// The longest request head accepted, in bytes, request line and final empty line included; longer
/// is 431.
pub const MAX_HEAD: usize = 8192;

/// The largest request body (announced by `Content-Length`) read and discarded; larger is 413.
pub const MAX_DISCARDED_BODY: u64 = 64 * 1024;

/// The most header lines a head may carry; more is 431.
const MAX_HEADERS: usize = 100;

/// The methods this server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: the file, a range of it, a listing or a redirect.
    Get,
    /// `HEAD`: the head `GET` would have sent, without the body.
    Head,
}

impl Method {
    /// The method as it appears on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: the connection closes after the response unless the client asks for keep-alive.
    Http10,
    /// `HTTP/1.1`: the connection stays open unless the client sends `Connection: close`.
    Http11,
}

impl Version {
    /// The version as it appears on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug)]
pub enum Parse<'b> {
    /// The head is not complete yet (and within the limits): read more and call again.
    Partial,
    /// A complete head.
    Complete(Request<'b>),
}

/// A parsed GET or HEAD request head, borrowing the buffer it was parsed from.
///
/// Only [`parse`] builds one, so every request here passed the checks of this module.
#[derive(Clone, Debug)]
pub struct Request<'b> {
    /// GET or HEAD; other methods are refused by `parse`.
    method: Method,
    /// The request's version.
    version: Version,
    /// The request target exactly as sent (for the access log).
    target: &'b str,
    /// The target's path, still percent-encoded: starts with `/`, holds no `?` or `#`.
    path: &'b str,
    /// What followed `?` in the target, if anything did.
    query: Option<&'b str>,
    /// Whether the connection may carry another request after this one.
    keep_alive: bool,
    /// Bytes of the buffer the head took, leading empty lines included.
    head_len: usize,
    /// The body announced by `Content-Length`, at most [`MAX_DISCARDED_BODY`].
    body_len: u64,
    /// The head's bytes, for the rare field that appears on several lines.
    head: &'b [u8],
    /// The `Range` value; `None` when absent or sent twice (both mean: ignore it).
    range: Option<&'b [u8]>,
    /// The `If-Range` value; empty when sent twice, which never validates.
    if_range: Option<&'b [u8]>,
    /// The `If-Modified-Since` value; `None` when absent or sent twice (both mean: ignore it).
    if_modified_since: Option<&'b [u8]>,
    /// How many `If-None-Match` lines the head has.
    if_none_match_lines: u32,
    /// The first `If-None-Match` value.
    if_none_match: &'b [u8],
}

impl<'b> Request<'b> {
    /// GET or HEAD.
    pub fn method(&self) -> Method {
        self.method
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request target exactly as sent, e.g. `/a%20b?x=1` or `http://host/a` (for the access log).
    pub fn target(&self) -> &'b str {
        self.target
    }

    /// The target's path, still percent-encoded; an absolute-form target contributes only its path.
    /// Always starts with `/`.
    pub fn path(&self) -> &'b str {
        self.path
    }

    /// The query string (after `?`, without it), if the target had one. Ignored when choosing the
    /// file; kept in a directory redirect's `Location`.
    pub fn query(&self) -> Option<&'b str> {
        self.query
    }

    /// Whether the connection may carry another request after this one (RFC 9112 §9.3): HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Makes the response close the connection (`Connection: close`), e.g. during a graceful
    /// shutdown.
    pub fn disable_keep_alive(&mut self) {
        self.keep_alive = false;
    }

    /// How many bytes at the start of the buffer the head took. The request's body, if any, follows.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The length of the body that follows the head (0 without `Content-Length`); at most
    /// [`MAX_DISCARDED_BODY`]. The connection must read and discard these bytes before the next request
    /// begins.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The `Range` field value, if sent once.
    pub fn range(&self) -> Option<&'b [u8]> {
        self.range
    }

    /// The `If-Range` field value, if sent (empty if sent more than once).
    pub fn if_range(&self) -> Option<&'b [u8]> {
        self.if_range
    }

    /// The `If-Modified-Since` field value, if sent once.
    pub fn if_modified_since(&self) -> Option<&'b [u8]> {
        self.if_modified_since
    }

    /// Whether the request has an `If-None-Match` field.
    pub fn has_if_none_match(&self) -> bool {
        self.if_none_match_lines > 0
    }

    /// The values of every `If-None-Match` line, in order (RFC 9110 §5.3: several lines form one
    /// list).
    pub fn if_none_match(&self) -> impl Iterator<Item = &'b [u8]> + use<'b> {
        let single = (self.if_none_match_lines == 1).then_some(self.if_none_match);
        let many = (self.if_none_match_lines > 1).then_some(FieldLines {
            rest: self.head,
            name: b"if-none-match",
        });
        single.into_iter().chain(many.into_iter().flatten())
    }
}

/// The values of the header lines named `name` in a head already checked by httparse.
#[derive(Debug)]
struct FieldLines<'b> {
    rest: &'b [u8],
    name: &'static [u8],
}

impl<'b> Iterator for FieldLines<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        loop {
            let end = self.rest.iter().position(|&byte| byte == b'\n')?;
            let line = &self.rest[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.rest = &self.rest[end + 1..];
            let Some(colon) = line.iter().position(|&byte| byte == b':') else {
                continue;
            };
            if line[..colon].eq_ignore_ascii_case(self.name) {
                return Some(trim(&line[colon + 1..]));
            }
        }
    }
}

/// Parses the request head at the start of `buf`.
///
/// # Errors
///
/// The [`Error`] to answer with; all of them close the connection
/// ([`Error::closes_connection`]): [`Error::UriTooLong`], [`Error::HeadTooLarge`],
/// [`Error::Malformed`], [`Error::MethodNotAllowed`], [`Error::NotImplemented`],
/// [`Error::MissingHost`], [`Error::TransferEncoding`], [`Error::InvalidContentLength`] and
/// [`Error::BodyTooLarge`].
pub fn parse(buf: &[u8]) -> Result<Parse<'_>, Error> {
    check_request_line(buf)?;
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    // Only the first MAX_HEAD bytes are looked at, so a break past the limit cannot turn the 431 that
    // fewer bytes gave into a 400.
    let within = &buf[..buf.len().min(MAX_HEAD)];
    let head_len = match parsed.parse_with_uninit_headers(within, &mut headers) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(Parse::Partial),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::HeadTooLarge { limit: MAX_HEAD });
        }
        Err(error) => {
            return Err(Error::Malformed {
                reason: describe(error),
            });
        }
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Error::Malformed {
            reason: "incomplete request line",
        });
    };
    let method = parse_method(method)?;
    let version = match version {
        0 => Version::Http10,
        _ => Version::Http11,
    };
    let (path, query) = split_target(target)?;

    let mut request = Request {
        method,
        version,
        target,
        path,
        query,
        keep_alive: false,
        head_len,
        body_len: 0,
        head: &buf[..head_len],
        range: None,
        if_range: None,
        if_modified_since: None,
        if_none_match_lines: 0,
        if_none_match: b"",
    };
    let mut hosts = 0;
    let mut close = false;
    let mut keep_alive = false;
    let mut transfer_encoding = false;
    let mut content_length: Option<u64> = None;
    let mut ranges = 0;
    let mut modified_sinces = 0;
    for header in parsed.headers.iter() {
        let name = header.name.as_bytes();
        let value = trim(header.value);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !is_valid_host(value) {
                return Err(Error::Malformed {
                    reason: "invalid Host header",
                });
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(parse_content_length(value, content_length)?);
        } else if name.eq_ignore_ascii_case(b"range") {
            ranges += 1;
            request.range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            request.if_range = Some(if request.if_range.is_some() {
                b""
            } else {
                value
            });
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            modified_sinces += 1;
            request.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            if request.if_none_match_lines == 0 {
                request.if_none_match = value;
            }
            request.if_none_match_lines += 1;
        }
    }
    match (version, hosts) {
        (Version::Http11, 0) => return Err(Error::MissingHost),
        (_, 2..) => {
            return Err(Error::Malformed {
                reason: "more than one Host header",
            });
        }
        _ => {}
    }
    if transfer_encoding {
        return Err(Error::TransferEncoding);
    }
    if let Some(length) = content_length {
        if length > MAX_DISCARDED_BODY {
            return Err(Error::BodyTooLarge {
                length,
                limit: MAX_DISCARDED_BODY,
            });
        }
        request.body_len = length;
    }
    if ranges > 1 {
        request.range = None;
    }
    if modified_sinces > 1 {
        request.if_modified_since = None;
    }
    request.keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    };
    Ok(Parse::Complete(request))
}

/// 414 as soon as the request line is longer than the limit, whether or not its end has arrived —
/// unless its first [`MAX_REQUEST_LINE`] bytes already break the grammar (400).
fn check_request_line(buf: &[u8]) -> Result<(), Error> {
    // Leading empty lines are skipped by the parser (RFC 9112 §2.2) and count only toward the head.
    let start = buf
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let line = match line.iter().position(|&byte| byte == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LINE {
        // A line already broken within the limit is malformed, as it was while fewer bytes had arrived.
        let within = &buf[..start + MAX_REQUEST_LINE];
        if let Err(error) = httparse::Request::new(&mut []).parse(within) {
            return Err(Error::Malformed {
                reason: describe(error),
            });
        }
        return Err(Error::UriTooLong {
            limit: MAX_REQUEST_LINE,
        });
    }
    Ok(())
}

fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many header lines",
        httparse::Error::Version => "invalid or unsupported HTTP version",
    }
}

fn parse_method(method: &str) -> Result<Method, Error> {
    // Methods are case-sensitive (RFC 9110 §9.1): "get" is unknown.
    let known = match method {
        "GET" => return Ok(Method::Get),
        "HEAD" => return Ok(Method::Head),
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => {
            return Err(Error::NotImplemented {
                method: method.to_owned(),
            });
        }
    };
    Err(Error::MethodNotAllowed { method: known })
}

/// Splits a request target into its path (percent-encoded, starting with `/`) and query. Origin form
/// (`/path?query`) and absolute form (`http://host/path?query`, RFC 9112 §3.2.2) are accepted.
fn split_target(target: &str) -> Result<(&str, Option<&str>), Error> {
    let (before_query, query) = match target.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (target, None),
    };
    if target.contains('#') {
        return Err(Error::Malformed {
            reason: "the request target holds a fragment",
        });
    }
    if before_query.starts_with('/') {
        return Ok((before_query, query));
    }
    let scheme_end = before_query.find("://").ok_or(Error::Malformed {
        reason: "the request target is neither a path nor an absolute URI",
    })?;
    let scheme = &before_query[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Error::Malformed {
            reason: "the request target's scheme is not http or https",
        });
    }
    let after_authority = &before_query[scheme_end + 3..];
    let path = after_authority
        .find('/')
        .map_or("/", |slash| &after_authority[slash..]);
    Ok((path, query))
}

/// `Content-Length` (RFC 9110 §8.6): digits, or a list of identical values; several lines must agree.
/// Too large for u64 counts as u64::MAX, which the body limit then refuses with 413.
fn parse_content_length(value: &[u8], previous: Option<u64>) -> Result<u64, Error> {
    let invalid = || Error::InvalidContentLength {
        value: String::from_utf8_lossy(value).into_owned(),
    };
    let mut agreed = previous;
    for element in value.split(|&byte| byte == b',') {
        let element = trim(element);
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return Err(invalid());
        }
        let length = element.iter().fold(0u64, |length, &digit| {
            length
                .saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        match agreed {
            Some(earlier) if earlier != length => return Err(invalid()),
            _ => agreed = Some(length),
        }
    }
    agreed.ok_or_else(invalid)
}

/// Host is `uri-host [ ":" port ]` (RFC 9110 §7.2): refuse what cannot be part of an authority.
fn is_valid_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&byte| byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&byte))
}

/// The non-empty elements of a comma-separated list, trimmed of optional whitespace.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim)
        .filter(|element| !element.is_empty())
}

/// `value` without leading and trailing spaces and tabs (OWS).
pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&byte| byte != b' ' && byte != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&byte| byte != b' ' && byte != b'\t')
        .map_or(start, |last| last + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Request<'_> {
        match parse(buf) {
            Ok(Parse::Complete(request)) => request,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn status(buf: &[u8]) -> u16 {
        match parse(buf) {
            Err(error) => {
                assert!(error.closes_connection(), "{error}");
                error.status().code()
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn is_partial(buf: &[u8]) -> bool {
        matches!(parse(buf), Ok(Parse::Partial))
    }

    #[test]
    fn simple_get() {
        let request = complete(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(request.method(), Method::Get);
        assert_eq!(request.version(), Version::Http11);
        assert_eq!(request.path(), "/index.html");
        assert_eq!(request.query(), None);
        assert!(request.keep_alive());
        assert_eq!(request.head_len(), 47);
        assert_eq!(request.body_len(), 0);
    }

    #[test]
    fn every_prefix_of_a_head_is_partial() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n";
        for end in 0..head.len() {
            assert!(is_partial(&head[..end]), "prefix of {end} bytes");
        }
        assert_eq!(complete(head).head_len(), head.len());
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf =
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nHEAD /two HTTP/1.1\r\nHost: x\r\n\r\nGET /thr";
        let first = complete(buf);
        assert_eq!(first.path(), "/one");
        let rest = &buf[first.head_len()..];
        let second = complete(rest);
        assert_eq!(second.method(), Method::Head);
        assert_eq!(second.path(), "/two");
        assert!(is_partial(&rest[second.head_len()..]));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let request = complete(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(request.path(), "/");
        assert_eq!(request.head_len(), 31);
    }

    #[test]
    fn query_and_absolute_form() {
        let request = complete(b"GET /a/b?x=1&y HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(request.path(), "/a/b");
        assert_eq!(request.query(), Some("x=1&y"));
        let request =
            complete(b"GET http://example.com/a/b?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(request.path(), "/a/b");
        assert_eq!(request.query(), Some("q"));
        assert_eq!(request.target(), "http://example.com/a/b?q");
        let request = complete(b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(request.path(), "/");
        let request = complete(b"GET http://example.com?q HTTP/1.1\r\nHost: e\r\n\r\n");
        assert_eq!(request.path(), "/");
        assert_eq!(
            status(b"GET ftp://example.com/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn request_line_over_4_kib_is_414_even_before_it_ends() {
        let mut line = b"GET /".to_vec();
        line.resize(MAX_REQUEST_LINE + 1, b'a');
        assert_eq!(status(&line), 414);
        line.truncate(MAX_REQUEST_LINE);
        assert!(is_partial(&line));

        let mut exact = b"GET /".to_vec();
        exact.resize(MAX_REQUEST_LINE - 9, b'a');
        exact.extend_from_slice(b" HTTP/1.1\r");
        assert!(
            is_partial(&exact),
            "a CR after 4096 bytes is still within the limit"
        );
        exact.extend_from_slice(b"\nHost: x\r\n\r\n");
        assert_eq!(complete(&exact).path().len(), MAX_REQUEST_LINE - 13);

        let mut long = b"GET /".to_vec();
        long.resize(MAX_REQUEST_LINE - 8, b'a');
        long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status(&long), 414);
    }

    #[test]
    fn long_request_line_is_414_even_when_the_head_is_also_too_large() {
        let mut buf = b"GET /".to_vec();
        buf.resize(MAX_HEAD + 100, b'a');
        assert_eq!(status(&buf), 414);
    }

    #[test]
    fn head_over_8_kib_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        while buf.len() <= MAX_HEAD {
            buf.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        assert_eq!(status(&buf), 431, "partial head over the limit");
        buf.extend_from_slice(b"\r\n");
        assert_eq!(status(&buf), 431, "complete head over the limit");
    }

    #[test]
    fn one_huge_header_line_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        buf.resize(MAX_HEAD + 1, b'b');
        assert_eq!(status(&buf), 431);
    }

    #[test]
    fn a_head_just_within_the_limit_is_accepted() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        buf.resize(MAX_HEAD - 4, b'b');
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(complete(&buf).head_len(), MAX_HEAD);
    }

    #[test]
    fn too_many_header_lines_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for index in 0..MAX_HEADERS {
            buf.extend_from_slice(format!("X-{index}: 1\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(status(&buf), 431);
    }

    #[test]
    fn malformed_heads_are_400() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n : y\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / FOO/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET  / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\x01 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn other_known_methods_are_405_and_unknown_ones_501() {
        for method in [
            "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT",
        ] {
            let head = format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
            match parse(head.as_bytes()) {
                Err(Error::MethodNotAllowed { method: sent }) => assert_eq!(sent, method),
                other => panic!("{method}: {other:?}"),
            }
        }
        assert_eq!(status(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n"), 501);
        assert_eq!(status(b"get / HTTP/1.1\r\nHost: x\r\n\r\n"), 501);
    }

    #[test]
    fn host_is_required_on_1_1_and_unique() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(Error::MissingHost)
        ));
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        complete(b"GET / HTTP/1.0\r\n\r\n");
        complete(b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n");
        complete(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    }

    #[test]
    fn keep_alive_rules() {
        assert!(complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive());
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n")
                .keep_alive()
        );
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(
            complete(b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection:  Keep-Alive \r\n\r\n")
                .keep_alive()
        );
        let mut request = complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        request.disable_keep_alive();
        assert!(!request.keep_alive());
    }

    #[test]
    fn transfer_encoding_is_always_400() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\n"),
            400
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(Error::TransferEncoding)
        ));
    }

    #[test]
    fn content_length_rules() {
        let request = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(request.body_len(), 5);
        assert_eq!(request.head_len(), 46);
        let request = complete(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n",
        );
        assert_eq!(request.body_len(), 7);
        let request = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n");
        assert_eq!(request.body_len(), MAX_DISCARDED_BODY);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,\r\n\r\n"),
            400
        );
    }

    #[test]
    fn conditional_and_range_fields_are_kept() {
        let request = complete(
            b"GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: \"a\"\r\n\
              If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-None-Match: \"x\", \"y\"\r\n\r\n",
        );
        assert_eq!(request.range(), Some(&b"bytes=0-1"[..]));
        assert_eq!(request.if_range(), Some(&b"\"a\""[..]));
        assert_eq!(
            request.if_modified_since(),
            Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..])
        );
        assert!(request.has_if_none_match());
        assert_eq!(
            request.if_none_match().collect::<Vec<_>>(),
            [&b"\"x\", \"y\""[..]]
        );
    }

    #[test]
    fn repeated_fields() {
        let request = complete(
            b"GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\
              if-none-match:\"b\" \r\nIf-Range: \"a\"\r\nIf-Range: \"a\"\r\n\r\n",
        );
        assert_eq!(
            request.if_none_match().collect::<Vec<_>>(),
            [&b"\"a\""[..], &b"\"b\""[..]]
        );
        assert_eq!(request.range(), None, "a repeated Range is ignored");
        assert_eq!(
            request.if_range(),
            Some(&b""[..]),
            "a repeated If-Range never validates"
        );
        let request = complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!request.has_if_none_match());
        assert_eq!(request.if_none_match().count(), 0);
    }

    #[test]
    fn bare_line_feeds_are_accepted() {
        let request = complete(b"GET /lf HTTP/1.1\nHost: x\n\n");
        assert_eq!(request.path(), "/lf");
    }

    #[test]
    fn trim_handles_edges() {
        assert_eq!(trim(b"  a b\t"), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }
}

//! Shared pieces of the benchmark peers: a tiny command-line reader (the peers take a handful of flags and
//! keep their dependencies to tokio, hdrhistogram and socket2) and a blocking HTTP/1.1 keep-alive client used
//! by `idle_conns` and `http_fixed`.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::str::FromStr;

/// The arguments of one command, consumed flag by flag; what is left over at [`Args::finish`] is an error.
#[derive(Debug)]
pub struct Args {
    /// The arguments not consumed yet, in their original order (program name removed).
    items: Vec<String>,
    /// The usage text printed on an error.
    usage: &'static str,
}

impl Args {
    /// Reads the process's arguments; `usage` is printed with any error, and alone for `-h` / `--help`.
    pub fn from_env(usage: &'static str) -> Self {
        let items: Vec<String> = std::env::args().skip(1).collect();
        if items.iter().any(|a| a == "-h" || a == "--help") {
            println!("{usage}");
            std::process::exit(0);
        }
        Self { items, usage }
    }

    /// Removes a boolean flag (any of `names`) and says whether it was present.
    pub fn flag(&mut self, names: &[&str]) -> bool {
        let before = self.items.len();
        self.items.retain(|a| !names.contains(&a.as_str()));
        self.items.len() != before
    }

    /// Removes `NAME VALUE` or `NAME=VALUE` (any of `names`) and parses the value; exits 2 on a bad value.
    pub fn value<T: FromStr>(&mut self, names: &[&str]) -> Option<T> {
        let mut found = None;
        let mut i = 0;
        while i < self.items.len() {
            let item = &self.items[i];
            if names.contains(&item.as_str()) {
                if i + 1 >= self.items.len() {
                    self.fail(&format!("{item} needs a value"));
                }
                let value = self.items.remove(i + 1);
                let name = self.items.remove(i);
                found = Some((name, value));
            } else if let Some((name, value)) =
                item.split_once('=').filter(|(n, _)| names.contains(n))
            {
                found = Some((name.to_string(), value.to_string()));
                self.items.remove(i);
            } else {
                i += 1;
            }
        }
        let (name, value) = found?;
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => self.fail(&format!("bad value {value:?} for {name}")),
        }
    }

    /// Removes and returns the first argument that is not a flag.
    pub fn positional(&mut self) -> Option<String> {
        let index = self.items.iter().position(|a| !a.starts_with('-'))?;
        Some(self.items.remove(index))
    }

    /// Exits 2 with the usage text if any argument was not consumed.
    pub fn finish(self) {
        if let Some(extra) = self.items.first() {
            self.fail(&format!("unexpected argument {extra:?}"));
        }
    }

    /// Prints `message` and the usage text to stderr and exits 2.
    pub fn fail(&self, message: &str) -> ! {
        eprintln!("error: {message}\n\n{}", self.usage);
        std::process::exit(2);
    }
}

/// What one HTTP response said, as far as a benchmark client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code from the status line.
    pub status: u16,
    /// The body length from `Content-Length` (0 when absent, as for 304).
    pub body_len: u64,
    /// Whether the server announced it closes the connection after this response.
    pub closes: bool,
}

/// A blocking keep-alive HTTP/1.1 client on one connection; bodies are read and discarded.
#[derive(Debug)]
pub struct HttpConnection {
    /// The connection.
    stream: TcpStream,
    /// Received bytes; `buf[start..end]` is not consumed yet.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// End of the received bytes in `buf`.
    end: usize,
}

impl HttpConnection {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends `request` (a complete request head) and reads the whole response.
    ///
    /// # Errors
    /// Any IO error, an end of stream before the response is complete, or a head that is not HTTP/1.x
    /// or is larger than the buffer.
    pub fn request(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request)?;
        let head_len = loop {
            if let Some(pos) = find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break pos + 4;
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head larger than 64 KiB",
                ));
            }
            self.fill()?;
        };
        let response = parse_head(&self.buf[self.start..self.start + head_len])?;
        self.start += head_len;
        let mut remaining = response.body_len;
        loop {
            let buffered = (self.end - self.start) as u64;
            let take = buffered.min(remaining);
            self.start += take as usize;
            remaining -= take;
            if remaining == 0 {
                break;
            }
            self.start = 0;
            self.end = 0;
            self.fill()?;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(response)
    }

    /// Reads more bytes after `end`; an end of stream is an error (a response was expected).
    fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection mid-response",
            ));
        }
        self.end += n;
        Ok(())
    }
}

/// A `GET` request head for `path` with a `Host` header, keep-alive (HTTP/1.1's default).
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: iomux-bench-peers\r\n\r\n")
        .into_bytes()
}

/// Parses a response head (status line and headers, ending with the blank line).
fn parse_head(head: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response head: {what}"),
        )
    };
    let text = std::str::from_utf8(head).map_err(|_| bad("not utf-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not HTTP/1.x"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status"))?;
    let mut response = Response {
        status,
        body_len: 0,
        closes: version == "HTTP/1.0",
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            response.body_len = value.parse().map_err(|_| bad("content-length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            response.closes = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked responses are not expected from a static file"));
        }
    }
    Ok(response)
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_keep_alive_head() {
        let r =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                body_len: 1024,
                closes: false
            }
        );
    }

    #[test]
    fn parses_a_closing_head() {
        let r =
            parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert_eq!(
            r,
            Response {
                status: 404,
                body_len: 9,
                closes: true
            }
        );
    }

    #[test]
    fn rejects_chunked_and_garbage() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }
}

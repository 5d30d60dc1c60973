//! What the fuzz targets share: a real document root on disk, made once per process, and the checks
//! every HTTP response must pass (a well-formed head, a truthful `Content-Length`, nothing opened
//! outside the root). Not part of iomux itself: the harness of `fuzz/fuzz_targets/`.
//!
//! The root lives under the system's temporary directory (`TMPDIR`), in `iomux-fuzz-<pid>`, and is
//! left there when the fuzzer exits (libFuzzer ends the process without running destructors);
//! `scripts/fuzz.sh` points `TMPDIR` at a directory it removes afterwards.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use iomux::http::{Body, Config, Response, SMALL_FILE_LIMIT, Site, Status};

/// The modification time of every file in the tree: 2024-01-01T00:00:00Z, so entity tags are known
/// in advance (`"65920080.0-<size in hex>"`) and the seed corpus can hold matching `If-None-Match`
/// and `If-Range` values.
pub const MTIME_SECONDS: u64 = 1_704_067_200;

/// Bytes that appear only in files outside the root; no response may ever carry them.
pub const OUTSIDE_MARK: &[u8] = b"OUTSIDE-ROOT";

/// The statuses iomux's status table can produce.
pub const STATUSES: [u16; 14] = [
    200, 206, 301, 304, 400, 404, 405, 408, 413, 414, 416, 431, 500, 501,
];

/// The document root and the four sites over it (every combination of `listing` and `show_hidden`;
/// links are never followed out).
#[derive(Debug)]
pub struct Fixture {
    /// The root with every symbolic link resolved: every file served must lie below it.
    pub root: PathBuf,
    /// Sites indexed by `listing as usize * 2 + show_hidden as usize`.
    sites: [Site; 4],
}

impl Fixture {
    /// The site with the given options.
    pub fn site(&self, listing: bool, show_hidden: bool) -> &Site {
        &self.sites[usize::from(listing) * 2 + usize::from(show_hidden)]
    }
}

/// The process's fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let base = std::env::temp_dir().join(format!("iomux-fuzz-{}", std::process::id()));
    if base.exists() {
        fs::remove_dir_all(&base).expect("removing a stale fixture of an earlier process");
    }
    fs::create_dir_all(&base).expect("creating the fixture directory");
    let base = fs::canonicalize(&base).expect("canonicalizing the fixture directory");
    let root = base.join("root");
    let outside = base.join("outside");

    let files: [(&Path, &[u8]); 8] = [
        (
            &outside.join("outside-secret.txt"),
            b"OUTSIDE-ROOT secret\n",
        ),
        (&outside.join("dir/outside-only.txt"), b"OUTSIDE-ROOT x\n"),
        (&outside.join("dir/index.html"), b"OUTSIDE-ROOT index\n"),
        (&root.join("index.html"), b"<h1>home</h1>\n"),
        (&root.join("hello.txt"), b"hello world\n"),
        (&root.join("empty.txt"), b""),
        (&root.join(".env"), b"HIDDEN env\n"),
        (&root.join(".git/config"), b"HIDDEN git\n"),
    ];
    let more: [(&Path, &[u8]); 7] = [
        (&root.join("%2e"), b"literally percent-2e\n"),
        (&root.join("a b.txt"), b"space\n"),
        (&root.join("docs/a.txt"), b"aaa"),
        (&root.join("docs/.hidden"), b"HIDDEN docs\n"),
        (&root.join("docs/b/c.css"), b"c {}\n"),
        (&root.join("sub/index.html"), b"<h1>sub</h1>\n"),
        (&root.join("odd/index.html/inner.txt"), b"inner\n"),
    ];
    for (path, content) in files.into_iter().chain(more) {
        write_file(path, content);
    }
    write_file(
        &root.join(OsStr::from_bytes(b"caf\xe9.txt")),
        b"latin-1 name\n",
    );
    let big: Vec<u8> = (0..SMALL_FILE_LIMIT + 4096)
        .map(|index| (index % 251) as u8)
        .collect();
    write_file(&root.join("big.bin"), &big);

    let links: [(&str, PathBuf); 14] = [
        ("link-in", "hello.txt".into()),
        ("link-abs-in", root.join("hello.txt")),
        ("round-trip", "../root/hello.txt".into()),
        ("dotlink", ".env".into()),
        ("self", ".".into()),
        ("docs/up", "..".into()),
        ("docs/escape", "../../outside/outside-secret.txt".into()),
        ("link-out", "../outside/outside-secret.txt".into()),
        ("link-out-abs", outside.join("outside-secret.txt")),
        ("dir-out", "../outside/dir".into()),
        ("broken", "nowhere".into()),
        ("loop", "loop".into()),
        ("proc-cwd", "/proc/self/cwd".into()),
        ("etc", "/etc".into()),
    ];
    for (name, target) in links {
        symlink(&target, root.join(name)).expect("creating a symbolic link in the fixture");
    }
    // A FIFO must be refused without blocking the open; skipped where mkfifo is missing.
    let _ = Command::new("mkfifo").arg(root.join("fifo")).status();

    let root = fs::canonicalize(&root).expect("canonicalizing the fixture root");
    let site = |listing, show_hidden| {
        let mut config = Config::new(&root);
        config.listing = listing;
        config.show_hidden = show_hidden;
        Site::new(config).expect("opening the fixture root as a site")
    };
    let sites = [
        site(false, false),
        site(false, true),
        site(true, false),
        site(true, true),
    ];
    Fixture { root, sites }
}

fn write_file(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().expect("fixture paths have a parent"))
        .expect("creating a fixture directory");
    let mut file = File::create(path).expect("creating a fixture file");
    file.write_all(content).expect("writing a fixture file");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME_SECONDS))
        .expect("setting a fixture file's mtime");
}

/// A checked response: its head fields and what the body turned out to be.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The status code.
    pub code: u16,
    /// The head's fields as (lowercase name, value), in order.
    pub fields: Vec<(String, &'a [u8])>,
    /// The in-memory body (empty for a file body).
    pub body: &'a [u8],
    /// For a file body: the path the open file really is, from `/proc/self/fd`.
    pub file: Option<PathBuf>,
}

impl Checked<'_> {
    /// The value of the field `name` (lowercase), if present.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|&(_, value)| value)
    }
}

/// Checks the bytes `out` that `Site::respond` or `reject` appended for `response` (`head_only` for
/// a HEAD request) and panics, naming the rule, on anything malformed: the status line must be
/// `HTTP/1.1 <code> <reason>` with a code from the table, the head must end with CRLFCRLF and hold
/// only well-formed fields, each at most once; `Content-Length` must match the buffered body or the
/// file range; `Connection: close` must be there exactly when the connection will close; 405 carries
/// `Allow`, 416 and 206 a consistent `Content-Range`, 301 a same-site `Location`; a file body must lie
/// inside `root` and never carry bytes from outside it.
pub fn check_response<'a>(
    out: &'a [u8],
    response: &Response,
    head_only: bool,
    root: &Path,
) -> Checked<'a> {
    let code = response.status.code();
    assert!(
        STATUSES.contains(&code),
        "status {code} is not in the table"
    );
    let status_line = format!("HTTP/1.1 {code} {}\r\n", response.status.reason());
    assert!(
        out.starts_with(status_line.as_bytes()),
        "the head does not start with {status_line:?}: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(64)])
    );
    let head_end = out
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("the head ends with CRLFCRLF")
        + 4;
    let (head, body) = out.split_at(head_end);
    let mut fields: Vec<(String, &[u8])> = Vec::new();
    for line in head[status_line.len()..head.len() - 2].split_inclusive(|&byte| byte == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .expect("every head line ends with CRLF");
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "a bare CR or LF inside a head line"
        );
        let colon = line
            .iter()
            .position(|&byte| byte == b':')
            .expect("every field line has a colon");
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        assert!(
            !name.is_empty() && name.iter().all(|&byte| is_tchar(byte)),
            "invalid field name {:?}",
            String::from_utf8_lossy(name)
        );
        let value = value.strip_prefix(b" ").expect("a space follows the colon");
        assert!(
            value
                .iter()
                .all(|&byte| byte == b'\t' || (byte >= 0x20 && byte != 0x7f)),
            "control byte in field {:?}: {:?}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        );
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        assert!(
            fields.iter().all(|(seen, _)| *seen != name),
            "field {name} appears twice"
        );
        fields.push((name, value));
    }
    let mut checked = Checked {
        code,
        fields,
        body,
        file: None,
    };
    for required in ["date", "server"] {
        assert!(checked.field(required).is_some(), "no {required} field");
    }
    let close = checked.field("connection") == Some(b"close");
    assert_eq!(
        close, !response.keep_alive,
        "Connection: close must be sent exactly when the connection closes"
    );

    let content_length = checked.field("content-length").map(|value| {
        assert!(
            !value.is_empty() && value.iter().all(u8::is_ascii_digit),
            "Content-Length is not a number"
        );
        String::from_utf8_lossy(value)
            .parse::<u64>()
            .expect("Content-Length fits u64")
    });
    if code == 304 {
        assert_eq!(content_length, None, "a 304 has no Content-Length");
        assert!(body.is_empty(), "a 304 has no body");
        assert!(checked.field("etag").is_some(), "a 304 carries the ETag");
    } else {
        let content_length = content_length.expect("every response but 304 has Content-Length");
        match &response.body {
            Body::Buffered => {
                assert_eq!(body.len() as u64, response.body_len, "body_len is the body");
                if head_only || code == 304 {
                    assert!(body.is_empty(), "HEAD gets no body");
                } else {
                    assert_eq!(
                        content_length,
                        body.len() as u64,
                        "Content-Length matches the buffered body"
                    );
                }
            }
            Body::File(file_body) => {
                assert!(!head_only, "HEAD gets no file body");
                assert!(body.is_empty(), "a file body follows the head alone");
                assert!(file_body.len > 0, "a file body is never empty");
                assert_eq!(content_length, file_body.len, "Content-Length is the range");
                assert_eq!(response.body_len, file_body.len, "body_len is the range");
                let size = file_body
                    .file
                    .metadata()
                    .expect("fstat of the body file")
                    .len();
                assert!(
                    file_body.offset + file_body.len <= size,
                    "the range lies within the file"
                );
                let real = fs::read_link(format!("/proc/self/fd/{}", file_body.file.as_raw_fd()))
                    .expect("readlink of the open body file");
                assert!(
                    real.starts_with(root) && real != root,
                    "opened {} outside the root {}",
                    real.display(),
                    root.display()
                );
                if file_body.len <= SMALL_FILE_LIMIT {
                    let mut content = Vec::new();
                    file_body
                        .read_into(&mut content)
                        .expect("reading the body file's range");
                    assert!(
                        !contains(&content, OUTSIDE_MARK),
                        "served bytes from outside the root"
                    );
                }
                checked.file = Some(real);
            }
        }
    }
    assert!(
        !contains(body, OUTSIDE_MARK) && !contains(body, b"outside-secret"),
        "a buffered body names or carries what lies outside the root"
    );

    match response.status {
        Status::MethodNotAllowed => {
            assert_eq!(checked.field("allow"), Some(&b"GET, HEAD"[..]));
        }
        Status::RangeNotSatisfiable => {
            let range = checked
                .field("content-range")
                .expect("416 has Content-Range");
            let length = range
                .strip_prefix(b"bytes */")
                .expect("416's Content-Range is bytes */length");
            assert!(!length.is_empty() && length.iter().all(u8::is_ascii_digit));
        }
        Status::PartialContent => check_content_range(&checked, content_length),
        Status::MovedPermanently => {
            let location = checked.field("location").expect("301 has Location");
            assert!(
                location.starts_with(b"/") && !location.starts_with(b"//"),
                "Location leaves the site: {:?}",
                String::from_utf8_lossy(location)
            );
        }
        _ => {}
    }
    checked
}

fn check_content_range(checked: &Checked<'_>, content_length: Option<u64>) {
    let range = checked
        .field("content-range")
        .expect("206 has Content-Range");
    let text = std::str::from_utf8(range).expect("Content-Range is ASCII");
    let spec = text
        .strip_prefix("bytes ")
        .expect("Content-Range starts with bytes");
    let (span, total) = spec.split_once('/').expect("Content-Range has a length");
    let (first, last) = span.split_once('-').expect("Content-Range has a span");
    let [first, last, total] = [first, last, total].map(|number| {
        number
            .parse::<u64>()
            .expect("Content-Range holds decimal numbers")
    });
    assert!(
        first <= last && last < total,
        "Content-Range {text} is inconsistent"
    );
    assert_eq!(
        content_length,
        Some(last - first + 1),
        "206 length and range agree"
    );
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

//! Fuzz target: root confinement. Any bytes become the path of a GET or HEAD request against a real
//! document root holding files, directories, dotfiles, a FIFO and symbolic links leading inside and
//! outside; the answer is compared with a small independent model (decode once, resolve `..`
//! lexically, then ask the file system with `canonicalize` what the path really names). Whatever the
//! bytes, an opened file lies below the root (checked on `/proc/self/fd`), nothing from outside is
//! served or listed, and hidden names stay hidden unless shown.

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};

use iomux::http::{Body, Parse, parse};
use iomux_fuzz::{check_response, contains, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let show_hidden = flags & 1 != 0;
    let listing = flags & 2 != 0;
    let method = if flags & 4 != 0 { "HEAD" } else { "GET" };
    let fixture = fixture();

    let mut path = b"/".to_vec();
    for &byte in raw {
        // Bytes the request line cannot carry raw are sent percent-encoded; the rest (`%` included) as
        // they are, so the fuzzer writes its own escapes, dots and slashes.
        if byte.is_ascii_graphic() && byte != b'?' && byte != b'#' {
            path.push(byte);
        } else {
            path.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    let mut head = format!("{method} ").into_bytes();
    head.extend_from_slice(&path);
    head.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\n\r\n");
    let request = match parse(&head) {
        Ok(Parse::Complete(request)) => request,
        Ok(Parse::Partial) => panic!("a finished head is partial"),
        Err(error) if error.status().code() == 414 => return,
        Err(error) => panic!("the request line was refused: {error}"),
    };
    assert_eq!(request.path().as_bytes(), &path[..]);

    let site = fixture.site(listing, show_hidden);
    let mut out = Vec::new();
    let response = site.respond(&request, &mut out);
    let checked = check_response(&out, &response, method == "HEAD", &fixture.root);

    let expected = expect(&path, show_hidden, listing, &fixture.root);
    assert_eq!(
        checked.code,
        expected.code,
        "{} {:?}: expected {expected:?}",
        method,
        String::from_utf8_lossy(&path)
    );
    if let (Body::File(_), Some(real)) = (&response.body, &checked.file) {
        assert_eq!(
            Some(real),
            expected.file.as_ref(),
            "served another file than the path names"
        );
    }
    if checked.code == 200 && expected.file.is_none() {
        check_listing(checked.body, show_hidden);
    }
});

/// What the model expects: a status and, for a file, which one.
#[derive(Debug)]
struct Expected {
    code: u16,
    file: Option<PathBuf>,
}

impl Expected {
    fn status(code: u16) -> Expected {
        Expected { code, file: None }
    }
}

/// The model: decode each segment once, refuse what a name cannot hold, resolve `.` and `..`
/// lexically, hide dot-names, then let `canonicalize` say what the path names on disk.
fn expect(path: &[u8], show_hidden: bool, listing: bool, root: &Path) -> Expected {
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut directory = true;
    for segment in path[1..].split(|&byte| byte == b'/') {
        let Some(name) = decode(segment) else {
            return Expected::status(400);
        };
        match &name[..] {
            b"" | b"." => directory = true,
            b".." => {
                if segments.pop().is_none() {
                    return Expected::status(400);
                }
                directory = true;
            }
            _ => {
                segments.push(name);
                directory = false;
            }
        }
    }
    if !show_hidden && segments.iter().any(|name| name.starts_with(b".")) {
        return Expected::status(404);
    }
    let mut named = root.to_path_buf();
    for name in &segments {
        named.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
    }
    let inside = |path: &Path| {
        fs::canonicalize(path)
            .ok()
            .filter(|real| real.starts_with(root))
    };
    if !directory {
        return match inside(&named) {
            Some(real) if real.is_file() => Expected {
                code: 200,
                file: Some(real),
            },
            Some(real) if real.is_dir() => Expected::status(301),
            _ => Expected::status(404),
        };
    }
    match inside(&named.join("index.html")) {
        Some(real) if real.is_file() => Expected {
            code: 200,
            file: Some(real),
        },
        _ if listing && inside(&named).is_some_and(|real| real.is_dir()) => Expected::status(200),
        _ => Expected::status(404),
    }
}

/// One percent-decoding of a segment; `None` for a malformed escape or a decoded `/`, `\` or NUL.
fn decode(segment: &[u8]) -> Option<Vec<u8>> {
    let mut name = Vec::with_capacity(segment.len());
    let mut index = 0;
    while index < segment.len() {
        let byte = if segment[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text.bytes().all(|digit| digit.is_ascii_hexdigit()) {
                return None;
            }
            index += 3;
            u8::from_str_radix(text, 16).ok()?
        } else {
            index += 1;
            segment[index - 1]
        };
        if matches!(byte, b'/' | b'\\' | 0) {
            return None;
        }
        name.push(byte);
    }
    Some(name)
}

/// A listing names nothing outside the root, no entry the server would refuse, and no dot-name
/// unless hidden files are shown.
fn check_listing(body: &[u8], show_hidden: bool) {
    let refused: [&[u8]; 9] = [
        b"link-out",
        b"link-out-abs",
        b"dir-out",
        b"escape",
        b"etc",
        b"proc-cwd",
        b"broken",
        b"loop",
        b"fifo",
    ];
    for name in refused {
        for end in [&b"<"[..], b"/<"] {
            let shown = [&b"\">"[..], name, end].concat();
            assert!(
                !contains(body, &shown),
                "the listing shows {}",
                String::from_utf8_lossy(name)
            );
        }
    }
    if !show_hidden {
        assert!(!contains(body, b"\">.env"), "the listing shows .env");
        assert!(!contains(body, b"\">.git"), "the listing shows .git");
        assert!(!contains(body, b"\">.hidden"), "the listing shows .hidden");
    }
}

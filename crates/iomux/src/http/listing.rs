//! The HTML directory listing served for a directory without `index.html` when listings are on.
//! Layer 4, the HTTP server.
//!
//! Directories come first, then files, each group sorted by name (byte order); a parent link leads up
//! except at the root. Names are HTML-escaped for display (invalid UTF-8 shown with U+FFFD) and
//! percent-encoded in links, so no name can inject markup or be read as a scheme. Dotfiles are left
//! out unless hidden files are shown, and so is every entry the server would not serve: symbolic
//! links leading out of the root (unless links are followed), broken links, FIFOs, sockets, devices.
//! Entries are examined with an `O_PATH` open under the same confinement as a request, which opens
//! neither a FIFO nor a device.

use std::fs::File;
use std::os::fd::AsFd;

use super::conditional::Validators;
use super::path::{Root, push_encoded};
use super::response::{push_decimal, push_http_date};
use super::{Config, Error};
use crate::sys::fs::{OpenKind, read_dir};

/// One entry worth listing.
#[derive(Debug)]
struct Entry {
    /// The name as stored on disk.
    name: Vec<u8>,
    /// Whether it is (or its link leads to) a directory.
    is_dir: bool,
    /// The size in bytes (files only).
    size: u64,
    /// The modification time in seconds since the epoch, clamped to what HTTP dates express.
    modified: u64,
}

/// Appends the listing of the directory `dir`, found at the relative path `path` under `root`, to
/// `out`. `path` is used as scratch space and left as it was.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be read.
pub(crate) fn write(
    root: &Root,
    config: &Config,
    dir: &File,
    path: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut names = Vec::new();
    read_dir(dir.as_fd(), |name| {
        let hidden = name.first() == Some(&b'.');
        if name != b"." && name != b".." && (config.show_hidden || !hidden) {
            names.push(name.to_vec());
        }
    })
    .map_err(|source| Error::Io {
        operation: "read directory",
        source,
    })?;

    let dir_len = path.len();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        if dir_len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let opened = root.open_file(path, OpenKind::Path);
        path.truncate(dir_len);
        let Ok(metadata) = opened.and_then(|file| {
            file.metadata().map_err(|source| Error::Io {
                operation: "fstat",
                source,
            })
        }) else {
            continue;
        };
        if !metadata.is_dir() && !metadata.is_file() {
            continue;
        }
        entries.push(Entry {
            name,
            is_dir: metadata.is_dir(),
            size: metadata.len(),
            modified: Validators::new(&metadata).modified(),
        });
    }
    entries.sort_unstable_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));

    out.extend_from_slice(
        b"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Index of ",
    );
    push_title(out, path);
    out.extend_from_slice(b"</title>\n</head>\n<body>\n<h1>Index of ");
    push_title(out, path);
    out.extend_from_slice(
        b"</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th><th>Last modified</th></tr></thead>\n<tbody>\n",
    );
    if !path.is_empty() {
        out.extend_from_slice(b"<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n");
    }
    for entry in &entries {
        out.extend_from_slice(b"<tr><td><a href=\"");
        push_encoded(out, &entry.name);
        if entry.is_dir {
            out.push(b'/');
        }
        out.extend_from_slice(b"\">");
        push_escaped(out, &String::from_utf8_lossy(&entry.name));
        if entry.is_dir {
            out.extend_from_slice(b"/</a></td><td>-");
        } else {
            out.extend_from_slice(b"</a></td><td>");
            push_decimal(out, entry.size);
        }
        out.extend_from_slice(b"</td><td>");
        push_http_date(out, entry.modified);
        out.extend_from_slice(b"</td></tr>\n");
    }
    out.extend_from_slice(b"</tbody>\n</table>\n</body>\n</html>\n");
    Ok(())
}

/// The directory's URL path as the heading shows it: `/`, or `/a/b/`.
fn push_title(out: &mut Vec<u8>, path: &[u8]) {
    out.push(b'/');
    if !path.is_empty() {
        push_escaped(out, &String::from_utf8_lossy(path));
        out.push(b'/');
    }
}

/// Appends `text` with the five characters that matter in HTML text and attribute values escaped.
pub(crate) fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        let mut out = Vec::new();
        push_escaped(&mut out, "<a href=\"x\">'&'</a>é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;é"
        );
    }

    #[test]
    fn titles() {
        let mut out = Vec::new();
        push_title(&mut out, b"");
        push_title(&mut out, b"a/<b>");
        assert_eq!(out, b"//a/&lt;b&gt;/");
    }
}

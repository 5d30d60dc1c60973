//! Root confinement: a request path percent-decoded exactly once and resolved lexically
//! ([`resolve`]), then opened under the document root so that nothing outside it is ever served
//! (`Root`). Layer 4, the HTTP server.
//!
//! # How a path is checked
//!
//! 1. **Lexically**, without touching the disk: the raw path is split on `/` *before* decoding, so an
//!    encoded slash (`%2F`) inside a segment is seen and refused (400), as are a backslash, a NUL byte
//!    and a malformed escape. Each segment is decoded once (`%252e` names a file literally called
//!    `%2e`); `.` is dropped and `..` removes the segment before it (`%2e%2e` too, since the decoded
//!    name is what the file system would see); climbing above the root is a 400. Empty segments
//!    (`//`) are dropped. A segment starting with `.` in the result is a dotfile: 404 unless
//!    `show_hidden`. The check applies to the names the client sends: a symbolic link the site's owner
//!    made to a dotfile is served.
//! 2. **On disk**, symbolic links are the only way left out of the root. Without `follow_symlinks` the
//!    file is opened with one `openat2(2)` call relative to the root's fd with `RESOLVE_BENEATH`: the
//!    kernel follows links but fails with `EXDEV` if any step leaves the root — one system call per
//!    file, no `realpath` walk (which costs a `readlink` or `lstat` per component), and no window
//!    between check and use. An absolute link also gives `EXDEV` even when it points back inside the
//!    root; only then does the slow path run: canonicalize, check the prefix, and open the canonical
//!    path again with `RESOLVE_BENEATH`. Kernels without `openat2` (before 5.6, or seccomp filters
//!    that refuse it) use that slow path for every request, with the race between the check and the
//!    open that a path-based check cannot avoid. With `follow_symlinks` a plain `openat(2)` relative
//!    to the root is used; `..` was already resolved, so only links the owner made lead out.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::Error;
use crate::sys::fs::{OpenKind, open_at, open_beneath};
use crate::sys::stat::{FileStat, stat_at_nofollow};

/// Bytes percent-encoded in a path segment we send (links, `Location`): everything but RFC 3986's
/// unreserved characters, so a name can never be read as a scheme, a query or markup.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-decodes and resolves the raw request path `raw` (which starts with `/` and has no query)
/// into `out`, as a path relative to the root: segments joined by `/`, no leading or trailing slash,
/// empty for the root itself. `out` is cleared first.
///
/// Returns whether the path asks for a directory: it ends in `/`, `.` or `..` (RFC 3986 §5.2.4), or
/// is the root.
///
/// # Errors
///
/// [`Error::BadPath`] (400) for a malformed escape, an encoded `/` inside a segment, a backslash, a
/// NUL byte, or `..` above the root; [`Error::Hidden`] (404) when a segment of the result starts with
/// `.` and `show_hidden` is false.
pub fn resolve(raw: &str, show_hidden: bool, out: &mut Vec<u8>) -> Result<bool, Error> {
    out.clear();
    let rest = raw.as_bytes().strip_prefix(b"/").ok_or(Error::BadPath {
        reason: "the path does not start with /",
    })?;
    let mut directory = true;
    for segment in rest.split(|&byte| byte == b'/') {
        let before = out.len();
        if !out.is_empty() {
            out.push(b'/');
        }
        let start = out.len();
        decode_segment(segment, out)?;
        match &out[start..] {
            b"" | b"." => {
                out.truncate(before);
                directory = true;
            }
            b".." => {
                out.truncate(before);
                if out.is_empty() {
                    return Err(Error::BadPath {
                        reason: "the path climbs above the root",
                    });
                }
                let parent = out.iter().rposition(|&byte| byte == b'/').unwrap_or(0);
                out.truncate(parent);
                directory = true;
            }
            _ => directory = false,
        }
    }
    if !show_hidden && (out.first() == Some(&b'.') || out.windows(2).any(|pair| pair == b"/.")) {
        return Err(Error::Hidden);
    }
    Ok(directory)
}

/// Appends `segment` to `out`, percent-decoded once, refusing what may not appear in a name.
fn decode_segment(segment: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut bytes = segment.iter();
    while let Some(&byte) = bytes.next() {
        let decoded = if byte == b'%' {
            let high = bytes.next().and_then(|&digit| hex_value(digit));
            let low = bytes.next().and_then(|&digit| hex_value(digit));
            match (high, low) {
                (Some(high), Some(low)) => high << 4 | low,
                _ => {
                    return Err(Error::BadPath {
                        reason: "a percent-escape is malformed",
                    });
                }
            }
        } else {
            byte
        };
        let reason = match decoded {
            b'/' => "an encoded slash is inside a path segment",
            b'\\' => "the path holds a backslash",
            0 => "the path holds a NUL byte",
            _ => {
                out.push(decoded);
                continue;
            }
        };
        return Err(Error::BadPath { reason });
    }
    Ok(())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Appends the relative path `path` to `out` percent-encoded segment by segment (the `/` between
/// segments kept), for a `Location` or a link.
pub(crate) fn push_encoded(out: &mut Vec<u8>, path: &[u8]) {
    for (index, segment) in path.split(|&byte| byte == b'/').enumerate() {
        if index > 0 {
            out.push(b'/');
        }
        for piece in percent_encode(segment, SEGMENT) {
            out.extend_from_slice(piece.as_bytes());
        }
    }
}

/// The document root, open as a directory, and how files under it are opened.
#[derive(Debug)]
pub(crate) struct Root {
    /// The root directory; every open is relative to it.
    dir: File,
    /// The root with every symbolic link resolved, for the slow path's prefix check.
    canonical: PathBuf,
    /// Whether `openat2` with `RESOLVE_BENEATH` works on this kernel (probed once, at open).
    beneath: bool,
    /// Whether symbolic links are followed wherever they lead.
    follow_symlinks: bool,
}

impl Root {
    /// Opens the directory at `path` as the root.
    pub(crate) fn open(path: &Path, follow_symlinks: bool) -> Result<Root, Error> {
        let root_error = |source| Error::Root {
            path: path.to_owned(),
            source,
        };
        let dir = File::open(path).map_err(root_error)?;
        if !dir.metadata().map_err(root_error)?.is_dir() {
            return Err(root_error(io::Error::from(io::ErrorKind::NotADirectory)));
        }
        let canonical = std::fs::canonicalize(path).map_err(root_error)?;
        let beneath = match open_beneath(dir.as_fd(), c".", OpenKind::Path) {
            Ok(_) => true,
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG)
                ) =>
            {
                false
            }
            Err(error) => return Err(root_error(error)),
        };
        Ok(Root {
            dir,
            canonical,
            beneath,
            follow_symlinks,
        })
    }

    /// Opens the relative path `path` (as [`resolve`] builds it; empty for the root) under the root.
    /// `path` is borrowed to append the terminating NUL and is left as it was.
    ///
    /// # Errors
    ///
    /// [`Error::OutsideRoot`] when a symbolic link leads out and links are not followed,
    /// [`Error::NotFound`] for what does not exist or cannot be opened by this user, [`Error::Io`] for
    /// the server's own failures (e.g. out of file descriptors).
    pub(crate) fn open_file(&self, path: &mut Vec<u8>, kind: OpenKind) -> Result<File, Error> {
        let root_itself = path.is_empty();
        if root_itself {
            path.push(b'.');
        }
        path.push(0);
        let result = match CStr::from_bytes_with_nul(path) {
            Ok(name) => self.open_name(name, kind),
            Err(_) => Err(Error::BadPath {
                reason: "the path holds a NUL byte",
            }),
        };
        path.pop();
        if root_itself {
            path.pop();
        }
        result.map(File::from)
    }

    /// Which file the single-segment path `path` (no `/`, not empty) names in the root directory
    /// itself now, with one `statx(2)` that follows no symbolic link: the lookup never leaves the
    /// root, and a link is reported as the link. `path` is borrowed to append the terminating NUL and
    /// is left as it was.
    ///
    /// # Errors
    ///
    /// The `statx` error (`ENOENT` when nothing has that name); `InvalidInput` for a path that is not
    /// a single segment.
    pub(crate) fn stat_entry(&self, path: &mut Vec<u8>) -> io::Result<FileStat> {
        if !is_single_segment(path) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        path.push(0);
        let result = match CStr::from_bytes_with_nul(path) {
            Ok(name) => stat_at_nofollow(self.dir.as_fd(), name),
            Err(_) => Err(io::ErrorKind::InvalidInput.into()),
        };
        path.pop();
        result
    }

    fn open_name(&self, name: &CStr, kind: OpenKind) -> Result<OwnedFd, Error> {
        if self.follow_symlinks {
            return open_at(self.dir.as_fd(), name, kind).map_err(open_error);
        }
        if self.beneath {
            match open_beneath(self.dir.as_fd(), name, kind) {
                Err(error) if error.raw_os_error() == Some(libc::EXDEV) => {}
                other => return other.map_err(open_error),
            }
        }
        self.open_checked(name, kind)
    }

    /// The slow path: resolve every link with `realpath(3)`, refuse what ends outside the root, and
    /// open the link-free result.
    fn open_checked(&self, name: &CStr, kind: OpenKind) -> Result<OwnedFd, Error> {
        let wanted = self.canonical.join(OsStr::from_bytes(name.to_bytes()));
        let target = std::fs::canonicalize(&wanted).map_err(open_error)?;
        let inside = target
            .strip_prefix(&self.canonical)
            .map_err(|_| Error::OutsideRoot)?;
        let mut bytes = inside.as_os_str().as_bytes().to_vec();
        if bytes.is_empty() {
            bytes.push(b'.');
        }
        bytes.push(0);
        let inside = CStr::from_bytes_with_nul(&bytes).map_err(|_| Error::NotFound)?;
        if self.beneath {
            // A link swapped in since canonicalize still cannot lead out.
            open_beneath(self.dir.as_fd(), inside, kind).map_err(open_error)
        } else {
            open_at(self.dir.as_fd(), inside, kind).map_err(open_error)
        }
    }
}

/// Whether the resolved path `path` is one name in the root directory itself.
pub(crate) fn is_single_segment(path: &[u8]) -> bool {
    !path.is_empty() && !path.contains(&b'/')
}

/// Sorts an open failure into "not there for the client" and "the server is failing".
pub(crate) fn open_error(error: io::Error) -> Error {
    match error.raw_os_error() {
        Some(libc::EXDEV) => Error::OutsideRoot,
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EACCES
            | libc::EPERM
            | libc::ENXIO
            | libc::ENODEV,
        ) => Error::NotFound,
        _ => Error::Io {
            operation: "open",
            source: error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, bool) {
        let mut out = Vec::new();
        let directory = resolve(raw, false, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), directory)
    }

    fn status(raw: &str) -> u16 {
        let mut out = Vec::new();
        resolve(raw, false, &mut out).unwrap_err().status().code()
    }

    #[test]
    fn plain_paths_resolve_relative_to_the_root() {
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("/index.html"), ("index.html".to_owned(), false));
        assert_eq!(ok("/a/b/c.txt"), ("a/b/c.txt".to_owned(), false));
        assert_eq!(ok("/a/b/"), ("a/b".to_owned(), true));
    }

    #[test]
    fn double_slashes_and_dots_collapse() {
        assert_eq!(ok("//a//b"), ("a/b".to_owned(), false));
        assert_eq!(ok("/a/./b"), ("a/b".to_owned(), false));
        assert_eq!(ok("/a/."), ("a".to_owned(), true));
        assert_eq!(ok("/."), (String::new(), true));
    }

    #[test]
    fn dot_dot_resolves_lexically_and_never_above_the_root() {
        assert_eq!(ok("/a/b/../c"), ("a/c".to_owned(), false));
        assert_eq!(ok("/a/b/.."), ("a".to_owned(), true));
        assert_eq!(ok("/a/.."), (String::new(), true));
        assert_eq!(status("/.."), 400);
        assert_eq!(status("/../etc/passwd"), 400);
        assert_eq!(status("/a/../../etc/passwd"), 400);
        assert_eq!(status("//../x"), 400);
    }

    #[test]
    fn encoded_dots_are_dots_after_the_one_decoding() {
        assert_eq!(ok("/a/%2e%2e/b"), ("b".to_owned(), false));
        assert_eq!(ok("/a/%2E/b"), ("a/b".to_owned(), false));
        assert_eq!(status("/%2e%2e/etc/passwd"), 400);
        assert_eq!(status("/%2e%2e"), 400);
        assert_eq!(status("/a/%2e%2e/%2e%2e/x"), 400);
    }

    #[test]
    fn double_encoding_is_decoded_only_once() {
        assert_eq!(ok("/%252e"), ("%2e".to_owned(), false));
        assert_eq!(ok("/%252e%252e/x"), ("%2e%2e/x".to_owned(), false));
        assert_eq!(ok("/a%20b"), ("a b".to_owned(), false));
    }

    #[test]
    fn encoded_slash_backslash_nul_and_bad_escapes_are_400() {
        assert_eq!(status("/a%2fb"), 400);
        assert_eq!(status("/a%2Fb"), 400);
        assert_eq!(status("/..%2fetc"), 400);
        assert_eq!(status("/a\\b"), 400);
        assert_eq!(status("/a%5cb"), 400);
        assert_eq!(status("/a%00b"), 400);
        assert_eq!(status("/a%"), 400);
        assert_eq!(status("/a%4"), 400);
        assert_eq!(status("/a%zz"), 400);
        assert_eq!(status("/a%%41"), 400);
        assert_eq!(status("relative"), 400);
    }

    #[test]
    fn dotfiles_are_404_unless_shown() {
        assert_eq!(status("/.env"), 404);
        assert_eq!(status("/a/.git/config"), 404);
        assert_eq!(status("/%2egit/config"), 404);
        assert_eq!(ok("/.git/../index.html"), ("index.html".to_owned(), false));
        assert_eq!(ok("/a..b"), ("a..b".to_owned(), false));
        let mut out = Vec::new();
        assert!(!resolve("/.env", true, &mut out).unwrap());
        assert_eq!(out, b".env");
    }

    #[test]
    fn non_utf8_names_pass_through() {
        let mut out = Vec::new();
        resolve("/caf%E9", false, &mut out).unwrap();
        assert_eq!(out, b"caf\xe9");
    }

    /// Opens `name` under `root` and says what came of it.
    fn open(root: &Root, name: &str) -> Result<String, String> {
        let mut path = name.as_bytes().to_vec();
        let result = root.open_file(&mut path, OpenKind::Read);
        assert_eq!(path, name.as_bytes(), "the path is left as it was");
        let file = result.map_err(|error| format!("{error:?}"))?;
        std::io::read_to_string(file).map_err(|error| format!("read: {error}"))
    }

    #[test]
    fn both_open_paths_confine_links_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root_path = base.join("root");
        std::fs::create_dir_all(root_path.join("d")).unwrap();
        std::fs::write(base.join("secret"), "secret").unwrap();
        std::fs::write(root_path.join("d/file"), "file").unwrap();
        std::os::unix::fs::symlink("d/file", root_path.join("rel")).unwrap();
        std::os::unix::fs::symlink(root_path.join("d/file"), root_path.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", root_path.join("out")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root_path.join("out-abs")).unwrap();
        std::os::unix::fs::symlink("..", root_path.join("d/up")).unwrap();

        let kernel = Root::open(&root_path, false).unwrap();
        // The path-based fallback used where openat2 is missing.
        let fallback = Root {
            dir: File::open(&root_path).unwrap(),
            canonical: root_path.clone(),
            beneath: false,
            follow_symlinks: false,
        };
        for root in [&kernel, &fallback] {
            assert_eq!(open(root, "d/file").unwrap(), "file");
            assert_eq!(open(root, "rel").unwrap(), "file");
            assert_eq!(open(root, "abs").unwrap(), "file");
            assert_eq!(open(root, "d/up/rel").unwrap(), "file");
            assert_eq!(open(root, "out").unwrap_err(), "OutsideRoot");
            assert_eq!(open(root, "out-abs").unwrap_err(), "OutsideRoot");
            assert_eq!(open(root, "d/up/out").unwrap_err(), "OutsideRoot");
            assert_eq!(open(root, "missing").unwrap_err(), "NotFound");
            assert_eq!(open(root, "d/file/x").unwrap_err(), "NotFound");
            assert!(
                open(root, "").is_err(),
                "the root is a directory, not readable text"
            );
        }
        let follow = Root::open(&root_path, true).unwrap();
        assert_eq!(open(&follow, "out").unwrap(), "secret");
        assert_eq!(open(&follow, "out-abs").unwrap(), "secret");
    }

    #[test]
    fn encoding_round_trips_through_resolve() {
        let names: [&[u8]; 5] = [b"a b", b"%2e", b"x?y#z", b"caf\xe9/sub", b"a:b"];
        for name in names {
            let mut encoded = b"/".to_vec();
            push_encoded(&mut encoded, name);
            assert!(encoded.is_ascii());
            let mut decoded = Vec::new();
            resolve(std::str::from_utf8(&encoded).unwrap(), false, &mut decoded).unwrap();
            assert_eq!(decoded, name);
        }
        let mut out = Vec::new();
        push_encoded(&mut out, b"a:b/<x>");
        assert_eq!(out, b"a%3Ab/%3Cx%3E");
    }
}

//! The file-system calls the HTTP server needs beyond std: `openat(2)`, `openat2(2)` with
//! `RESOLVE_BENEATH` (one system call that opens a path and guarantees it never leaves a directory) and
//! `getdents64(2)` to list a directory from its fd. Part of the OS boundary (`sys`); Linux only.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::fd::cvt;

/// What an open is for; each maps to a fixed set of `open(2)` flags, all with `O_CLOEXEC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenKind {
    /// Read the file: `O_RDONLY | O_NONBLOCK | O_NOCTTY`. `O_NONBLOCK` keeps a FIFO in the tree from
    /// blocking the caller until a writer appears; it changes nothing for regular files.
    Read,
    /// Read a directory's entries: `O_RDONLY | O_DIRECTORY`.
    Directory,
    /// Only a handle for `fstat`: `O_PATH`, which opens neither a FIFO nor a device.
    Path,
}

impl OpenKind {
    fn flags(self) -> libc::c_int {
        let flags = match self {
            OpenKind::Read => libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            OpenKind::Directory => libc::O_RDONLY | libc::O_DIRECTORY,
            OpenKind::Path => libc::O_PATH,
        };
        flags | libc::O_CLOEXEC
    }
}

/// `struct open_how` of `linux/openat2.h`; libc's is `#[non_exhaustive]` and cannot be built here.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` relative to `dir` with `openat(2)`, following symbolic links wherever they lead.
pub(crate) fn open_at(dir: BorrowedFd<'_>, path: &CStr, kind: OpenKind) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `dir` is an open fd (borrowed).
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), kind.flags()) })?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the relative `path` under `dir` with `openat2(2)` and `RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS`: the kernel resolves `..` and symbolic links itself and fails with `EXDEV`
/// if any step would leave `dir` (absolute symbolic links included), so the check and the open are one
/// atomic call.
///
/// Fails with `ENOSYS` before Linux 5.6 (and with `EPERM` under some seccomp filters).
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &CStr,
    kind: OpenKind,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: kind.flags() as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    let ret = cvt(
        // SAFETY: `path` is NUL-terminated and `how` a valid open_how; both outlive the call, and the
        // size passed is that of `how`, so the kernel reads nothing beyond it.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                mem::size_of::<OpenHow>(),
            )
        },
    )?;
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: openat2 just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Calls `each` with the name of every entry of the directory open as `dir` (`.` and `..` included),
/// reading from the fd's current offset with `getdents64(2)`. `dir` should be freshly opened.
pub(crate) fn read_dir(dir: BorrowedFd<'_>, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    // u64 words keep the buffer 8-byte aligned, as the kernel's linux_dirent64 records expect.
    let mut words = vec![0u64; 4096];
    let mut bytes = Vec::with_capacity(words.len() * 8);
    loop {
        let ret = cvt(
            // SAFETY: the pointer and length describe `words`, writable and alive for the call.
            unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir.as_raw_fd(),
                    words.as_mut_ptr(),
                    words.len() * 8,
                )
            },
        )?;
        let filled =
            usize::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if filled == 0 {
            return Ok(());
        }
        bytes.clear();
        for word in &words[..filled.div_ceil(8)] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        parse_dirents(&bytes[..filled], &mut each)?;
    }
}

/// Walks `linux_dirent64` records: `d_ino` (8 bytes), `d_off` (8), `d_reclen` (2), `d_type` (1), then
/// the NUL-terminated name.
fn parse_dirents(mut records: &[u8], each: &mut impl FnMut(&[u8])) -> io::Result<()> {
    const NAME_OFFSET: usize = 19;
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed getdents64 record");
    while !records.is_empty() {
        if records.len() < NAME_OFFSET {
            return Err(malformed());
        }
        let record_len = usize::from(u16::from_ne_bytes([records[16], records[17]]));
        if record_len <= NAME_OFFSET || record_len > records.len() {
            return Err(malformed());
        }
        let name_area = &records[NAME_OFFSET..record_len];
        let name_len = name_area
            .iter()
            .position(|&byte| byte == 0)
            .ok_or_else(malformed)?;
        each(&name_area[..name_len]);
        records = &records[record_len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs;
    use std::os::fd::AsFd;

    #[test]
    fn read_dir_lists_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..300 {
            fs::write(dir.path().join(format!("file-{index:03}")), b"x").unwrap();
        }
        let root = fs::File::open(dir.path()).unwrap();
        let mut names = Vec::new();
        read_dir(root.as_fd(), |name| names.push(name.to_vec())).unwrap();
        names.sort();
        assert_eq!(names.len(), 302);
        assert_eq!(names[0], b".");
        assert_eq!(names[1], b"..");
        assert_eq!(names[2], b"file-000");
        assert_eq!(names[301], b"file-299");
    }

    #[test]
    fn open_beneath_refuses_to_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::write(dir.path().join("secret"), b"s").unwrap();
        fs::write(dir.path().join("root/inside"), b"i").unwrap();
        std::os::unix::fs::symlink("../secret", dir.path().join("root/escape")).unwrap();
        std::os::unix::fs::symlink("inside", dir.path().join("root/alias")).unwrap();
        let root = fs::File::open(dir.path().join("root")).unwrap();
        let open = |name: &str| {
            let path = CString::new(name).unwrap();
            open_beneath(root.as_fd(), &path, OpenKind::Read)
        };
        match open("escape") {
            Err(error) if error.raw_os_error() == Some(libc::ENOSYS) => return,
            Err(error) => assert_eq!(error.raw_os_error(), Some(libc::EXDEV)),
            Ok(_) => panic!("a symlink leaving the directory was opened"),
        }
        assert!(open("alias").is_ok());
        assert_eq!(
            open("missing").unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        let escape = CString::new("escape").unwrap();
        assert!(open_at(root.as_fd(), &escape, OpenKind::Read).is_ok());
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let mut seen = 0;
        let mut count = |_: &[u8]| seen += 1;
        assert!(parse_dirents(&[0; 10], &mut count).is_err());
        let mut record = [0u8; 24];
        record[16] = 24;
        record[19] = b'a';
        assert!(parse_dirents(&record, &mut count).is_ok());
        record[16] = 200;
        assert!(parse_dirents(&record, &mut count).is_err());
        assert_eq!(seen, 1);
    }
}

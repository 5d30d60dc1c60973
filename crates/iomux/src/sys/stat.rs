//! `statx(2)` relative to a directory fd, for the HTTP server's file cache: one system call that says
//! which file a name in a directory is now (device, inode, type, size, modification and change times)
//! without opening it. Part of the OS boundary (`sys`); Linux only.

use std::ffi::CStr;
use std::fs::Metadata;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

use super::fd::cvt;

/// What `statx` says about one file: enough to tell whether it is still the very file (same inode,
/// not written, renamed, linked or chmod-ed since) another look saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    /// The device holding the inode, as `st_dev` (`makedev(major, minor)`).
    pub(crate) dev: u64,
    /// The inode number.
    pub(crate) ino: u64,
    /// `st_mode`: file type and permissions.
    pub(crate) mode: u32,
    /// The size in bytes.
    pub(crate) size: u64,
    /// The modification time: seconds and nanoseconds since the epoch.
    pub(crate) mtime: (i64, u32),
    /// The status change time (any write, rename, link, chmod sets it; no call can set it back).
    pub(crate) ctime: (i64, u32),
}

impl FileStat {
    /// Whether this is a regular file.
    pub(crate) fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

impl From<&Metadata> for FileStat {
    fn from(metadata: &Metadata) -> FileStat {
        // The nanosecond fields are in 0..1e9, so the casts are exact.
        FileStat {
            dev: metadata.dev(),
            ino: metadata.ino(),
            mode: metadata.mode(),
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec() as u32),
            ctime: (metadata.ctime(), metadata.ctime_nsec() as u32),
        }
    }
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)`: the file `name` names relative to `dir`, and if that is a
/// symbolic link, the link itself. Symbolic links among the directories of a multi-segment `name` are
/// followed: callers that must stay under `dir` pass a single segment.
pub(crate) fn stat_at_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<FileStat> {
    let mut buffer = MaybeUninit::<libc::statx>::uninit();
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_INO
        | libc::STATX_SIZE
        | libc::STATX_MTIME
        | libc::STATX_CTIME;
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT;
    // SAFETY: `name` is NUL-terminated and outlives the call; `buffer` is writable and the size of a
    // `struct statx`; `dir` is an open fd (borrowed).
    cvt(unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            mask,
            buffer.as_mut_ptr(),
        )
    })?;
    // SAFETY: statx succeeded, so it filled the struct.
    let stat = unsafe { buffer.assume_init() };
    let wanted = mask;
    if stat.stx_mask & wanted != wanted {
        // A file system that cannot say all of these cannot be revalidated by them.
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(FileStat {
        dev: libc::makedev(stat.stx_dev_major, stat.stx_dev_minor),
        ino: stat.stx_ino,
        mode: u32::from(stat.stx_mode),
        size: stat.stx_size,
        mtime: (stat.stx_mtime.tv_sec, stat.stx_mtime.tv_nsec),
        ctime: (stat.stx_ctime.tv_sec, stat.stx_ctime.tv_nsec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs;
    use std::os::fd::AsFd;

    #[test]
    fn statx_agrees_with_the_open_files_metadata() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"12345").unwrap();
        std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();
        let root = fs::File::open(dir.path()).unwrap();
        let name = |text: &str| CString::new(text).unwrap();

        let by_name = stat_at_nofollow(root.as_fd(), &name("file")).unwrap();
        let opened = FileStat::from(
            &fs::File::open(dir.path().join("file"))
                .unwrap()
                .metadata()
                .unwrap(),
        );
        assert_eq!(by_name, opened);
        assert!(by_name.is_file());
        assert_eq!(by_name.size, 5);

        let link = stat_at_nofollow(root.as_fd(), &name("link")).unwrap();
        assert!(!link.is_file(), "the link itself, not its target");
        assert_ne!(link.ino, by_name.ino);

        let error = stat_at_nofollow(root.as_fd(), &name("missing")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
    }
}

//! A worker's cache of small files: their bytes and response fields, kept by resolved path and
//! revalidated on every request, so a hit costs one `statx(2)` instead of `openat2` + `fstat` +
//! `pread` + `close`. Layer 4, the HTTP server.
//!
//! # Never stale
//! An entry keeps the identity of the file it was read from: device, inode, type, size, modification
//! time and change time ([`FileStat`]). The change time moves on every write, truncation, rename,
//! link, unlink and `chmod`, and no system call can set it back, so a file with the same identity
//! has the same bytes. Every request compares the identity the file has *now* with the entry's
//! ([`response`](super::response) does the looking) and serves the entry only if they are equal;
//! a replaced, rewritten, deleted or swapped file is a miss and goes the uncached way.
//!
//! One trap remains: a write in the same clock tick as the read that filled the entry gets the same
//! change time (file systems stamp with a coarse clock, some with whole seconds or two). So bytes
//! are cached only when they were read at least [`SETTLE`] after the file's change time; until then
//! the file is read afresh for every request (as git does for its "racily clean" index entries).
//! A network file system whose server clock runs more than that behind ours could still defeat it.
//!
//! # Bounds
//! At most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] bytes (contents and paths) per worker; only
//! files up to [`SMALL_FILE_LIMIT`](super::SMALL_FILE_LIMIT) have their bytes cached. A larger file
//! gets an entry without bytes: its head fields, valid while the `fstat` of each request's open
//! file shows the same identity. A full cache evicts with
//! the clock algorithm (a second chance for entries used since the hand last passed). A hit
//! allocates nothing; only filling an entry does.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::conditional::Validators;
use crate::sys::stat::FileStat;

/// The most entries one worker's cache holds.
pub(crate) const MAX_ENTRIES: usize = 1024;

/// The most bytes (cached contents and their paths) one worker's cache holds.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;

/// How long after its last change a file's bytes may be cached (see the module docs).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// A cached file: its identity when read, its bytes, and the response fields they give.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The file's identity when the entry was made; a hit needs an equal one now.
    pub(crate) stat: FileStat,
    /// The whole file, read when it had `stat`; `None` for a file too large to keep.
    pub(crate) content: Option<Box<[u8]>>,
    /// What the response head says about this version of the file.
    pub(crate) facts: Facts,
}

/// What a response head says about one version of a file, worked out once per version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts {
    /// `ETag` and the `Last-Modified` second.
    pub(crate) validators: Validators,
    /// `Last-Modified` as an IMF-fixdate.
    pub(crate) last_modified: [u8; 29],
    /// The file's length in bytes.
    pub(crate) length: u64,
    /// The `Content-Type` value, from the path's extension.
    pub(crate) content_type: &'static str,
    /// Whether `; charset=utf-8` follows the content type.
    pub(crate) charset: bool,
}

impl Entry {
    /// The bytes this entry counts against [`MAX_BYTES`] under the key `path`.
    fn cost(&self, path: &[u8]) -> usize {
        self.content.as_ref().map_or(0, |content| content.len()) + path.len()
    }
}

/// Whether bytes read now from a file with this identity may be cached: its last change is at least
/// [`SETTLE`] old by our clock.
pub(crate) fn is_settled(stat: &FileStat) -> bool {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return false;
    };
    let Ok(changed) = u64::try_from(stat.ctime.0) else {
        return false;
    };
    let changed = Duration::new(changed, stat.ctime.1.min(999_999_999));
    now.checked_sub(changed).is_some_and(|age| age >= SETTLE)
}

#[derive(Debug)]
struct Slot {
    /// The resolved path; the same allocation is the map's key.
    path: Rc<[u8]>,
    entry: Entry,
    /// Used since the clock hand last passed.
    referenced: bool,
}

/// The cache; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    /// The [`Site`](super::Site) the entries belong to (its id); paths are relative to its root.
    site: u64,
    /// Path → index in `slots`.
    index: HashMap<Rc<[u8]>, usize>,
    /// The clock's ring: an entry stays in its slot until evicted or dropped; never longer than
    /// [`MAX_ENTRIES`].
    slots: Vec<Option<Slot>>,
    /// Indices of the empty slots.
    free: Vec<usize>,
    /// Where the clock hand points in `slots`.
    hand: usize,
    /// The sum of the entries' costs; never above [`MAX_BYTES`].
    bytes: usize,
}

impl FileCache {
    /// An empty cache; it allocates only when the first entry is added.
    pub(crate) fn new() -> FileCache {
        FileCache::default()
    }

    /// Binds the cache to the site with id `site`, emptying it if it held another site's files.
    pub(crate) fn use_for(&mut self, site: u64) {
        if self.site != site {
            *self = FileCache {
                site,
                ..FileCache::default()
            };
        }
    }

    /// Whether the entry for `path`, if any, holds no bytes (a large file, whatever it is now).
    pub(crate) fn is_large(&self, path: &[u8]) -> bool {
        self.index.get(path).is_some_and(|&index| {
            self.slots[index]
                .as_ref()
                .is_some_and(|slot| slot.entry.content.is_none())
        })
    }

    /// The slot of the entry for `path` if it has the identity `stat`; an entry with another
    /// identity is dropped.
    pub(crate) fn find(&mut self, path: &[u8], stat: &FileStat) -> Option<usize> {
        let index = *self.index.get(path)?;
        let slot = self.slots[index]
            .as_mut()
            .expect("the index names only full slots");
        if slot.entry.stat != *stat {
            self.remove(path);
            return None;
        }
        slot.referenced = true;
        Some(index)
    }

    /// The entry in `slot`, as [`find`](FileCache::find) or [`insert`](FileCache::insert) returned
    /// it (valid until the cache is changed).
    pub(crate) fn entry(&self, slot: usize) -> &Entry {
        &self.slots[slot]
            .as_ref()
            .expect("find and insert return full slots")
            .entry
    }

    /// Drops the entry for `path`, if any.
    pub(crate) fn remove(&mut self, path: &[u8]) {
        if let Some(index) = self.index.remove(path) {
            self.empty(index);
        }
    }

    /// Empties the full slot `index` (already unindexed).
    fn empty(&mut self, index: usize) {
        let slot = self.slots[index]
            .take()
            .expect("only full slots are emptied");
        self.bytes -= slot.entry.cost(&slot.path);
        self.free.push(index);
    }

    /// Adds `entry` for `path` (replacing any entry for it), evicting others as needed; returns its
    /// slot, or `None` if it alone is over the byte limit (then nothing is kept).
    pub(crate) fn insert(&mut self, path: &[u8], entry: Entry) -> Option<usize> {
        self.remove(path);
        let cost = entry.cost(path);
        if cost > MAX_BYTES {
            return None;
        }
        while self.index.len() >= MAX_ENTRIES || self.bytes + cost > MAX_BYTES {
            self.evict_one();
        }
        let path: Rc<[u8]> = Rc::from(path);
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.index.insert(Rc::clone(&path), index);
        self.slots[index] = Some(Slot {
            path,
            entry,
            referenced: false,
        });
        self.bytes += cost;
        Some(index)
    }

    /// Evicts the first entry the clock hand finds unreferenced, clearing marks as it passes; the
    /// cache holds at least one entry.
    fn evict_one(&mut self) {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let index = self.hand;
            self.hand += 1;
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            let path = Rc::clone(&slot.path);
            self.index.remove(&path[..]);
            self.empty(index);
            return;
        }
    }

    /// The number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The bytes held, as counted against [`MAX_BYTES`].
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, size: u64) -> FileStat {
        FileStat {
            dev: 1,
            ino,
            mode: libc::S_IFREG | 0o644,
            size,
            mtime: (1_000, 0),
            ctime: (1_000, 0),
        }
    }

    fn entry(ino: u64, size: usize) -> Entry {
        Entry {
            stat: stat(ino, size as u64),
            content: Some(vec![b'x'; size].into_boxed_slice()),
            facts: Facts {
                validators: Validators::from_stat(&stat(ino, size as u64)),
                last_modified: [b' '; 29],
                length: size as u64,
                content_type: "text/plain",
                charset: true,
            },
        }
    }

    #[test]
    fn a_hit_needs_the_same_identity_and_a_miss_drops_the_entry() {
        let mut cache = FileCache::new();
        cache.insert(b"a.txt", entry(1, 10)).unwrap();
        let slot = cache.find(b"a.txt", &stat(1, 10)).unwrap();
        assert_eq!(cache.entry(slot).content.as_deref(), Some(&[b'x'; 10][..]));
        assert!(!cache.is_large(b"a.txt"));
        let mut changed = stat(1, 10);
        changed.ctime.1 += 1;
        assert!(cache.find(b"a.txt", &changed).is_none());
        assert_eq!(cache.len(), 0, "a stale entry is dropped at once");
        assert_eq!(cache.bytes(), 0);
        assert!(cache.find(b"a.txt", &stat(1, 10)).is_none());
    }

    #[test]
    fn entries_and_bytes_stay_within_their_limits() {
        let mut cache = FileCache::new();
        for ino in 0..(MAX_ENTRIES as u64 * 3) {
            let path = format!("file-{ino}");
            cache.insert(path.as_bytes(), entry(ino, 100)).unwrap();
            assert!(cache.len() <= MAX_ENTRIES);
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        let mut cache = FileCache::new();
        for ino in 0..200 {
            let path = format!("big-{ino}");
            cache
                .insert(path.as_bytes(), entry(ino, 64 * 1024))
                .unwrap();
            assert!(cache.bytes() <= MAX_BYTES, "{}", cache.bytes());
        }
        assert!(cache.len() < 200);
        assert!(cache.insert(b"huge", entry(999, MAX_BYTES)).is_none());
        // Every indexed path finds its own entry; every other slot is free.
        for (path, &index) in &cache.index {
            assert_eq!(&cache.slots[index].as_ref().unwrap().path, path);
        }
        let full = cache.slots.iter().filter(|slot| slot.is_some()).count();
        assert_eq!(full + cache.free.len(), cache.slots.len());
        assert_eq!(full, cache.len());
    }

    #[test]
    fn the_clock_gives_used_entries_a_second_chance() {
        let mut cache = FileCache::new();
        for ino in 0..MAX_ENTRIES as u64 {
            cache
                .insert(format!("f{ino}").as_bytes(), entry(ino, 1))
                .unwrap();
        }
        assert!(cache.find(b"f5", &stat(5, 1)).is_some());
        for ino in 0..10 {
            cache
                .insert(format!("new{ino}").as_bytes(), entry(5_000 + ino, 1))
                .unwrap();
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.find(b"f5", &stat(5, 1)).is_some(), "f5 was used");
        assert!(cache.find(b"f4", &stat(4, 1)).is_none());
        assert!(cache.find(b"f10", &stat(10, 1)).is_none());
        assert!(cache.find(b"f11", &stat(11, 1)).is_some());
        assert!(
            cache.find(b"new0", &stat(5_000, 1)).is_some(),
            "new entries stay"
        );
    }

    #[test]
    fn another_site_empties_the_cache() {
        let mut cache = FileCache::new();
        cache.use_for(1);
        cache.insert(b"a", entry(1, 1)).unwrap();
        cache.use_for(1);
        assert_eq!(cache.len(), 1);
        cache.use_for(2);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn only_settled_files_are_cached() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut fresh = stat(1, 1);
        fresh.ctime = (now.as_secs() as i64, 0);
        assert!(!is_settled(&fresh));
        let mut old = fresh;
        old.ctime.0 -= 3;
        assert!(is_settled(&old));
        let mut future = fresh;
        future.ctime.0 += 100;
        assert!(!is_settled(&future));
        let mut before_epoch = fresh;
        before_epoch.ctime.0 = -5;
        assert!(!is_settled(&before_epoch));
    }
}

//! The one fd → [`Key`] table every backend shares: fd numbers are small and dense, so a vector
//! indexed by fd gives O(1) lookups without hashing. Layer 1, the selector API.

use std::os::fd::RawFd;

use super::Key;

/// The registrations of one selector, indexed by fd.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    /// `slots[fd]` holds fd's key; the vector grows to the highest fd registered.
    slots: Vec<Option<Key<T>>>,
    /// The number of `Some` slots.
    len: usize,
}

impl<T> Registry<T> {
    pub(crate) fn new() -> Registry<T> {
        Registry {
            slots: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        self.get(fd).is_some()
    }

    #[inline]
    pub(crate) fn get(&self, fd: RawFd) -> Option<&Key<T>> {
        self.slots.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<&mut Key<T>> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// Inserts a key whose fd the caller checked is free.
    pub(crate) fn insert(&mut self, key: Key<T>) {
        let slot =
            usize::try_from(key.fd).expect("register takes a borrowed fd, which is never negative");
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        if self.slots[slot].replace(key).is_none() {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<Key<T>> {
        let key = self.slots.get_mut(usize::try_from(fd).ok()?)?.take()?;
        self.len -= 1;
        Some(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Key<T>> {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{Interest, Trigger};

    fn key(fd: RawFd, data: &'static str) -> Key<&'static str> {
        Key {
            fd,
            interest: Interest::READ,
            trigger: Trigger::Level,
            data,
        }
    }

    #[test]
    fn insert_get_remove_keep_the_count() {
        let mut registry = Registry::new();
        registry.insert(key(7, "seven"));
        registry.insert(key(3, "three"));
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.get(7).map(|key| key.data), Some("seven"));
        assert!(registry.get(5).is_none());
        assert!(registry.get(-1).is_none());
        assert_eq!(
            registry.iter().map(|key| key.fd).collect::<Vec<_>>(),
            [3, 7]
        );
        assert_eq!(registry.remove(7).map(|key| key.data), Some("seven"));
        assert!(registry.remove(7).is_none());
        assert_eq!(registry.len(), 1);
    }
}

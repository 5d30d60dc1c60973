//! The timer queue of the event loop and of the runtime: an indexed binary min-heap of deadlines over a
//! slab of entries, so scheduling, cancelling and resetting a timer are all O(log n) and a cancelled
//! timer leaves nothing behind. Layer 2, the callback event loop; the runtime (layer 3) keeps its
//! sleeps in the same heap (`Timers<Waker>`, see `runtime/time.rs`), which is why this module is
//! `pub(crate)` rather than a private part of the event loop.
//!
//! Each pending timer owns one slab slot (its value and where it sits in the heap) and one heap entry
//! (deadline, sequence number, slot). Heap moves update the slot's position, so a timer can be taken
//! out of the middle of the heap at once instead of being marked dead and left to rot (lazy deletion
//! would let a server that re-sets a keep-alive timeout on every request grow its heap without bound).
//! Freed slots are reused; memory stays at the peak number of pending timers.

use std::time::Instant;

/// A pending timer of an [`EventLoop`](super::EventLoop), returned by
/// [`call_later`](super::EventLoop::call_later), [`call_at`](super::EventLoop::call_at) and the
/// source timeouts; pass it to [`cancel`](super::EventLoop::cancel) or
/// [`reset`](super::EventLoop::reset).
///
/// A handle stays safe to use after its timer fired or was cancelled: the operations then do nothing
/// and return `false`. Every timer gets a sequence number never used again, so a stale handle can never
/// reach a newer timer that reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timer {
    /// The slab slot the timer occupied when it was scheduled.
    slot: u32,
    /// Its unique sequence number; also the tie-breaker between equal deadlines.
    seq: u64,
}

/// A pending timer's place in the heap.
#[derive(Clone, Copy, Debug)]
struct HeapEntry {
    deadline: Instant,
    seq: u64,
    slot: u32,
}

impl HeapEntry {
    /// Earlier deadlines first; equal deadlines in scheduling order.
    fn before(&self, other: &HeapEntry) -> bool {
        (self.deadline, self.seq) < (other.deadline, other.seq)
    }
}

/// A slab slot: a pending timer, or a free slot waiting for reuse.
#[derive(Debug)]
struct Slot<T> {
    /// The sequence number of the timer in this slot; meaningless while free.
    seq: u64,
    /// Where the timer sits in `heap`; `FREE` while the slot is free.
    position: u32,
    /// The timer's payload; `None` exactly while the slot is free.
    value: Option<T>,
}

const FREE: u32 = u32::MAX;

/// Pending timers, each with a value (the event loop's callback, the runtime's waker), ordered by
/// deadline.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    /// A binary min-heap by (deadline, seq); `heap[i].slot`'s `position` is `i`.
    heap: Vec<HeapEntry>,
    /// One slot per pending timer plus free slots; never longer than the peak number pending.
    slots: Vec<Slot<T>>,
    /// Indices of free slots in `slots`.
    free: Vec<u32>,
    /// The sequence number the next timer gets.
    next_seq: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Timers<T> {
        Timers {
            heap: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
        }
    }

    /// The number of pending timers.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The number of slots allocated: the peak number of timers pending at once.
    #[cfg(test)]
    pub(crate) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// The sequence number the next timer will get: timers scheduled from now on have one at least
    /// this large.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The earliest deadline, if any timer is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|entry| entry.deadline)
    }

    /// Schedules `value` for `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> Timer {
        let seq = self.next_seq;
        self.next_seq += 1;
        let position = u32::try_from(self.heap.len())
            .ok()
            .filter(|&position| position != FREE)
            .expect("fewer than 2^32 - 1 timers are pending: each holds memory");
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Slot {
                    seq,
                    position,
                    value: Some(value),
                };
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .expect("slots never outnumber the pending timers, checked above");
                self.slots.push(Slot {
                    seq,
                    position,
                    value: Some(value),
                });
                slot
            }
        };
        self.heap.push(HeapEntry {
            deadline,
            seq,
            slot,
        });
        self.sift_up(position as usize);
        Timer { slot, seq }
    }

    /// The heap position of `timer`, if it is still pending.
    fn position(&self, timer: Timer) -> Option<usize> {
        let slot = self.slots.get(timer.slot as usize)?;
        (slot.position != FREE && slot.seq == timer.seq).then_some(slot.position as usize)
    }

    /// When `timer` is due, if it is still pending.
    pub(crate) fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.position(timer)
            .map(|position| self.heap[position].deadline)
    }

    /// The value of `timer`, if it is still pending.
    pub(crate) fn get_mut(&mut self, timer: Timer) -> Option<&mut T> {
        let slot = self.slots.get_mut(timer.slot as usize)?;
        if slot.position == FREE || slot.seq != timer.seq {
            return None;
        }
        slot.value.as_mut()
    }

    /// Removes `timer` and returns its value; `None` if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, timer: Timer) -> Option<T> {
        let position = self.position(timer)?;
        Some(self.remove_at(position))
    }

    /// Moves `timer` to a new deadline, keeping its value and handle; `false` if it is no longer
    /// pending.
    pub(crate) fn reset(&mut self, timer: Timer, deadline: Instant) -> bool {
        let Some(position) = self.position(timer) else {
            return false;
        };
        let old = self.heap[position].deadline;
        self.heap[position].deadline = deadline;
        if deadline < old {
            self.sift_up(position);
        } else {
            self.sift_down(position);
        }
        true
    }

    /// Removes and returns the earliest timer if it is due at `now` and was scheduled before
    /// `seq_limit` (see [`next_seq`](Timers::next_seq)), so timers scheduled while due ones fire wait
    /// for the next round.
    pub(crate) fn pop_due(&mut self, now: Instant, seq_limit: u64) -> Option<(Timer, T)> {
        let top = *self.heap.first()?;
        if top.deadline > now || top.seq >= seq_limit {
            return None;
        }
        let value = self.remove_at(0);
        Some((
            Timer {
                slot: top.slot,
                seq: top.seq,
            },
            value,
        ))
    }

    /// Takes the heap entry at `position` out, frees its slot and returns its value.
    fn remove_at(&mut self, position: usize) -> T {
        let entry = self.heap.swap_remove(position);
        if position < self.heap.len() {
            // The former last entry now sits at `position`: record that, then restore the heap order
            // in whichever direction it is broken.
            self.set_position(position);
            if position > 0 && self.heap[position].before(&self.heap[(position - 1) / 2]) {
                self.sift_up(position);
            } else {
                self.sift_down(position);
            }
        }
        let slot = &mut self.slots[entry.slot as usize];
        slot.position = FREE;
        self.free.push(entry.slot);
        slot.value
            .take()
            .expect("a slot with a heap position holds a value")
    }

    /// Records in the slot of `heap[position]` that it sits at `position`.
    fn set_position(&mut self, position: usize) {
        let slot = self.heap[position].slot as usize;
        self.slots[slot].position =
            u32::try_from(position).expect("heap positions fit in u32, checked at insert");
    }

    fn sift_up(&mut self, mut position: usize) {
        while position > 0 {
            let parent = (position - 1) / 2;
            if !self.heap[position].before(&self.heap[parent]) {
                break;
            }
            self.heap.swap(position, parent);
            self.set_position(position);
            position = parent;
        }
        self.set_position(position);
    }

    fn sift_down(&mut self, mut position: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * position + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&self.heap[position]) {
                break;
            }
            self.heap.swap(position, child);
            self.set_position(position);
            position = child;
        }
        self.set_position(position);
    }

    /// Checks the heap order and the slot positions (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        for (position, entry) in self.heap.iter().enumerate() {
            if position > 0 {
                assert!(!entry.before(&self.heap[(position - 1) / 2]), "heap order");
            }
            let slot = &self.slots[entry.slot as usize];
            assert_eq!(slot.position as usize, position, "slot position");
            assert_eq!(slot.seq, entry.seq, "slot seq");
            assert!(slot.value.is_some(), "pending slot holds a value");
        }
        assert_eq!(self.heap.len() + self.free.len(), self.slots.len());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    /// Pops everything due by `now`, returning the values.
    fn drain(timers: &mut Timers<u64>, now: Instant) -> Vec<u64> {
        let limit = timers.next_seq();
        std::iter::from_fn(|| timers.pop_due(now, limit).map(|(_, value)| value)).collect()
    }

    #[test]
    fn pops_in_deadline_order_then_scheduling_order() {
        let base = Instant::now();
        let mut timers = Timers::new();
        for (value, ms) in [(0, 30), (1, 10), (2, 20), (3, 10), (4, 0), (5, 20)] {
            timers.insert(at(base, ms), value);
            timers.check();
        }
        assert_eq!(timers.next_deadline(), Some(base));
        assert_eq!(drain(&mut timers, at(base, 15)), [4, 1, 3]);
        assert_eq!(timers.len(), 3);
        assert_eq!(drain(&mut timers, at(base, 100)), [2, 5, 0]);
        assert!(timers.is_empty());
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn nothing_is_popped_before_its_deadline() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.insert(at(base, 10), 1);
        assert!(timers.pop_due(at(base, 9), u64::MAX).is_none());
        assert!(timers.pop_due(at(base, 10), u64::MAX).is_some());
    }

    #[test]
    fn timers_scheduled_after_the_limit_wait() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.insert(at(base, 5), 1);
        let limit = timers.next_seq();
        timers.insert(base, 2);
        // The newer timer is earlier, so it blocks the round: nothing fires early, the rest waits.
        assert!(timers.pop_due(at(base, 10), limit).is_none());
        assert_eq!(drain(&mut timers, at(base, 10)), [2, 1]);
    }

    #[test]
    fn cancel_removes_at_once_and_stale_handles_do_nothing() {
        let base = Instant::now();
        let mut timers = Timers::new();
        let first = timers.insert(at(base, 10), 1);
        let second = timers.insert(at(base, 20), 2);
        assert_eq!(timers.cancel(first), Some(1));
        timers.check();
        assert_eq!(timers.cancel(first), None);
        assert!(!timers.reset(first, base));
        assert_eq!(timers.len(), 1);
        // The freed slot is reused, but the old handle cannot reach the new timer.
        let third = timers.insert(at(base, 5), 3);
        assert_eq!(third.slot, first.slot);
        assert_eq!(timers.cancel(first), None);
        assert_eq!(timers.get_mut(first), None);
        assert!(timers.deadline(third).is_some());
        assert_eq!(timers.deadline(second), Some(at(base, 20)));
        *timers.get_mut(second).unwrap() = 22;
        assert_eq!(drain(&mut timers, at(base, 30)), [3, 22]);
        assert_eq!(timers.cancel(third), None);
        assert_eq!(timers.get_mut(third), None);
    }

    #[test]
    fn reset_moves_both_ways() {
        let base = Instant::now();
        let mut timers = Timers::new();
        let handles: Vec<Timer> = (0..8).map(|i| timers.insert(at(base, i * 10), i)).collect();
        assert!(timers.reset(handles[0], at(base, 75)));
        timers.check();
        assert!(timers.reset(handles[7], at(base, 1)));
        timers.check();
        assert_eq!(timers.deadline(handles[7]), Some(at(base, 1)));
        assert_eq!(drain(&mut timers, at(base, 100)), [7, 1, 2, 3, 4, 5, 6, 0]);
    }

    #[test]
    fn memory_stays_at_the_peak_under_churn() {
        let base = Instant::now();
        let mut timers = Timers::new();
        let mut pending: Vec<Timer> = (0..1000)
            .map(|i| timers.insert(at(base, i % 97), i))
            .collect();
        for round in 0..100u64 {
            // Re-set every timer (the keep-alive pattern), then cancel and replace a tenth of them.
            for (i, &timer) in pending.iter().enumerate() {
                assert!(timers.reset(timer, at(base, (i as u64 * 7 + round) % 1000)));
            }
            for timer in pending.iter_mut().skip(round as usize % 10).step_by(10) {
                assert!(timers.cancel(*timer).is_some());
                *timer = timers.insert(at(base, round), round);
            }
            assert_eq!(timers.len(), 1000);
            assert_eq!(timers.slots_len(), 1000);
        }
        timers.check();
        let fired = drain(&mut timers, at(base, 10_000));
        assert_eq!(fired.len(), 1000);
        assert!(timers.is_empty());
    }

    #[test]
    fn random_operations_keep_the_invariants() {
        // A small deterministic generator (xorshift) drives inserts, cancels, resets and pops,
        // checked against a plain list.
        let base = Instant::now();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut timers = Timers::new();
        let mut model: Vec<(Timer, Instant, u64)> = Vec::new();
        for step in 0..5000u64 {
            match next() % 4 {
                0 | 1 => {
                    let deadline = at(base, next() % 500);
                    model.push((timers.insert(deadline, step), deadline, step));
                }
                2 if !model.is_empty() => {
                    let index = (next() % model.len() as u64) as usize;
                    let (timer, _, value) = model.swap_remove(index);
                    assert_eq!(timers.cancel(timer), Some(value));
                }
                3 if !model.is_empty() => {
                    let index = (next() % model.len() as u64) as usize;
                    let deadline = at(base, next() % 500);
                    assert!(timers.reset(model[index].0, deadline));
                    model[index].1 = deadline;
                }
                _ => {
                    let now = at(base, next() % 500);
                    if let Some((timer, value)) = timers.pop_due(now, u64::MAX) {
                        let index = model.iter().position(|entry| entry.0 == timer).unwrap();
                        let (_, deadline, expected) = model.swap_remove(index);
                        assert_eq!(value, expected);
                        assert!(deadline <= now);
                        assert!(model.iter().all(|entry| entry.1 >= deadline));
                    } else {
                        assert!(model.iter().all(|entry| entry.1 > now));
                    }
                }
            }
            timers.check();
            assert_eq!(timers.len(), model.len());
        }
    }
}

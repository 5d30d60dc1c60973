//! Time in the runtime: [`sleep`], [`sleep_until`], [`timeout`] and the timer heap behind them, an
//! indexed binary heap that removes a cancelled timer at once, so dropped sleeps never pile up. Layer 3,
//! the coroutine runtime.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::executor;
use super::reactor::Reactor;

/// A [`timeout`] passed before its future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operation did not finish within {after:?}")]
pub struct Elapsed {
    /// The time the future was given.
    pub after: Duration,
}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}

/// Waits until `duration` has passed; never less (the runtime rounds its waits up, and a timer fires
/// only once the clock has reached its deadline).
///
/// The deadline is fixed when `sleep` is called, not when the future is first polled.
///
/// # Panics
/// Polling the returned [`Sleep`] outside a runtime panics (nothing could ever wake it).
///
/// ```
/// use std::time::{Duration, Instant};
/// use iomux::runtime::{Runtime, sleep};
///
/// let runtime = Runtime::new()?;
/// let start = Instant::now();
/// runtime.block_on(sleep(Duration::from_millis(20)));
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Instant::now().checked_add(duration))
}

/// Waits until `deadline`; a deadline in the past is ready at once.
///
/// # Panics
/// As [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(Some(deadline))
}

/// Runs `future`, giving up after `duration` with [`Elapsed`] (the future is then dropped). A future that
/// is ready on its first poll wins even with a zero duration.
///
/// # Errors
/// [`Elapsed`] if the time passes first.
///
/// # Panics
/// As [`sleep`].
///
/// ```
/// use std::future::pending;
/// use std::time::Duration;
/// use iomux::runtime::{Runtime, timeout};
///
/// let runtime = Runtime::new()?;
/// let late = runtime.block_on(timeout(Duration::from_millis(10), pending::<()>()));
/// assert_eq!(late.unwrap_err().after, Duration::from_millis(10));
/// let quick = runtime.block_on(timeout(Duration::from_secs(5), async { 7 }));
/// assert_eq!(quick, Ok(7));
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut sleep = sleep(duration);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed { after: duration })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it cancels its timer at once.
#[derive(Debug)]
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    /// `None`: too far in the future to represent; never fires.
    deadline: Option<Instant>,
    /// The timer, once registered by the first poll that found the deadline ahead.
    timer: Option<(Rc<Reactor>, TimerKey)>,
    /// The deadline has been reached and reported.
    done: bool,
}

impl Sleep {
    fn new(deadline: Option<Instant>) -> Sleep {
        Sleep {
            deadline,
            timer: None,
            done: false,
        }
    }

    /// When this sleep ends; `None` if it never does (the duration overflowed the clock).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline has been reached (as reported by a poll).
    pub fn is_elapsed(&self) -> bool {
        self.done
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        if let Some((reactor, key)) = &this.timer {
            let mut timers = reactor.timers.borrow_mut();
            if timers.is_fired(*key) {
                timers.remove(*key);
                drop(timers);
                this.timer = None;
                this.done = true;
                return Poll::Ready(());
            }
            timers.set_waker(*key, cx.waker());
            return Poll::Pending;
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            this.done = true;
            return Poll::Ready(());
        }
        let reactor = executor::current_reactor("sleep")
            .expect("a Sleep is polled inside a runtime: nothing else could ever wake it");
        let key = reactor
            .timers
            .borrow_mut()
            .insert(deadline, cx.waker().clone());
        this.timer = Some((reactor, key));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((reactor, key)) = self.timer.take() {
            reactor.timers.borrow_mut().remove(key);
        }
    }
}

/// Names one timer of a [`TimerHeap`]; stale once the timer is removed (its slot's generation moves on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

/// `TimerSlot::heap_index` of a timer that fired and waits for its owner to notice.
const FIRED: u32 = u32::MAX;
/// `TimerSlot::heap_index` of a free slot.
const FREE: u32 = u32::MAX - 1;

#[derive(Debug)]
struct TimerSlot {
    /// Bumped each time the slot is freed, so old keys stop matching.
    generation: u32,
    /// The timer's position in `heap`, or [`FIRED`] or [`FREE`].
    heap_index: u32,
    waker: Option<Waker>,
}

#[derive(Debug, Clone, Copy)]
struct HeapEntry {
    deadline: Instant,
    /// Insertion order, so timers with one deadline fire first-in first-out.
    seq: u64,
    slot: u32,
}

impl HeapEntry {
    fn before(&self, other: &HeapEntry) -> bool {
        (self.deadline, self.seq) < (other.deadline, other.seq)
    }
}

/// The pending timers of one runtime: a binary min-heap on (deadline, insertion order) whose entries
/// know their slot and whose slots know their heap position, so insert, remove and fire are
/// O(log n) and a removed timer leaves nothing behind. Slots are reused; the memory is that of the
/// most timers ever pending at once.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: Vec<HeapEntry>,
    slots: Vec<TimerSlot>,
    free: Vec<u32>,
    next_seq: u64,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap::default()
    }

    /// The number of timers that have not fired.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline of a timer that has not fired.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|entry| entry.deadline)
    }

    /// Adds a timer that wakes `waker` once the clock reaches `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&slot| slot < FREE)
                    .expect("fewer than 4 billion timers are pending at once");
                self.slots.push(TimerSlot {
                    generation: 0,
                    heap_index: FREE,
                    waker: None,
                });
                slot
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = self.heap.len();
        self.heap.push(HeapEntry {
            deadline,
            seq,
            slot,
        });
        let entry = &mut self.slots[slot as usize];
        entry.heap_index = index as u32;
        entry.waker = Some(waker);
        let key = TimerKey {
            slot,
            generation: entry.generation,
        };
        self.sift_up(index);
        key
    }

    fn slot(&self, key: TimerKey) -> Option<&TimerSlot> {
        self.slots
            .get(key.slot as usize)
            .filter(|slot| slot.generation == key.generation && slot.heap_index != FREE)
    }

    /// Whether the timer has fired and not yet been removed.
    pub(crate) fn is_fired(&self, key: TimerKey) -> bool {
        self.slot(key).is_some_and(|slot| slot.heap_index == FIRED)
    }

    /// Replaces the waker of a pending timer, unless it would wake the same task already.
    pub(crate) fn set_waker(&mut self, key: TimerKey, waker: &Waker) {
        if self.slot(key).is_none() {
            return;
        }
        let slot = &mut self.slots[key.slot as usize];
        if !slot.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
    }

    /// Removes a timer, pending or fired, and frees its slot; a stale key does nothing.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        let Some(heap_index) = self.slot(key).map(|slot| slot.heap_index) else {
            return;
        };
        if heap_index != FIRED {
            self.remove_at(heap_index as usize);
        }
        let slot = &mut self.slots[key.slot as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.heap_index = FREE;
        slot.waker = None;
        self.free.push(key.slot);
    }

    /// Fires every timer whose deadline is at or before `now`, in deadline order, moving their
    /// wakers into `wakers`. Returns how many fired.
    pub(crate) fn fire_expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        let mut fired = 0;
        while let Some(first) = self.heap.first() {
            if first.deadline > now {
                break;
            }
            let slot = first.slot;
            self.remove_at(0);
            let slot = &mut self.slots[slot as usize];
            slot.heap_index = FIRED;
            wakers.extend(slot.waker.take());
            fired += 1;
        }
        fired
    }

    /// Takes the entry at `index` out of the heap, restoring the heap order.
    fn remove_at(&mut self, index: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(index, last);
        self.heap.pop();
        if index < self.heap.len() {
            self.place(index);
            self.sift_down(index);
            self.sift_up(index);
        }
    }

    /// Records in the slot of the entry at `index` where that entry now is.
    fn place(&mut self, index: usize) {
        let slot = self.heap[index].slot as usize;
        self.slots[slot].heap_index = index as u32;
    }

    fn sift_up(&mut self, mut index: usize) {
        while index > 0 {
            let parent = (index - 1) / 2;
            if !self.heap[index].before(&self.heap[parent]) {
                break;
            }
            self.heap.swap(index, parent);
            self.place(index);
            index = parent;
        }
        self.place(index);
    }

    fn sift_down(&mut self, mut index: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * index + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&self.heap[index]) {
                break;
            }
            self.heap.swap(index, child);
            self.place(index);
            index = child;
        }
        self.place(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that records which timer woke it.
    struct Recorder {
        id: usize,
        log: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    fn recorder(id: usize, log: &Arc<std::sync::Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Recorder {
            id,
            log: Arc::clone(log),
        }))
    }

    fn fire(heap: &mut TimerHeap, now: Instant) -> usize {
        let mut wakers = Vec::new();
        let fired = heap.fire_expired(now, &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
        fired
    }

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let base = Instant::now();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut heap = TimerHeap::new();
        for (id, ms) in [(0, 30), (1, 10), (2, 20), (3, 10), (4, 50)] {
            heap.insert(base + Duration::from_millis(ms), recorder(id, &log));
        }
        assert_eq!(heap.next_deadline(), Some(base + Duration::from_millis(10)));
        assert_eq!(fire(&mut heap, base + Duration::from_millis(9)), 0);
        assert_eq!(fire(&mut heap, base + Duration::from_millis(20)), 3);
        // Equal deadlines fire in insertion order.
        assert_eq!(*log.lock().unwrap(), [1, 3, 2]);
        assert_eq!(fire(&mut heap, base + Duration::from_millis(100)), 2);
        assert_eq!(*log.lock().unwrap(), [1, 3, 2, 0, 4]);
        assert_eq!(heap.len(), 0);
        assert_eq!(heap.next_deadline(), None);
    }

    #[test]
    fn removed_timers_never_fire_and_leave_nothing_behind() {
        let base = Instant::now();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut heap = TimerHeap::new();
        let keys: Vec<_> = (0..100)
            .map(|id| heap.insert(base + Duration::from_millis(id as u64), recorder(id, &log)))
            .collect();
        for key in keys.iter().step_by(2) {
            heap.remove(*key);
        }
        assert_eq!(heap.len(), 50);
        assert_eq!(fire(&mut heap, base + Duration::from_secs(1)), 50);
        let fired = log.lock().unwrap().clone();
        assert_eq!(fired, (1..100).step_by(2).collect::<Vec<_>>());
        // Fired timers stay until their owner removes them; a stale key is ignored.
        for key in &keys {
            heap.remove(*key);
            heap.remove(*key);
        }
        assert_eq!(heap.free.len(), heap.slots.len());
    }

    #[test]
    fn slots_are_reused_so_memory_follows_the_pending_count() {
        let base = Instant::now();
        let mut heap = TimerHeap::new();
        for round in 0..10_000u64 {
            let key = heap.insert(base + Duration::from_secs(round), Waker::noop().clone());
            heap.remove(key);
        }
        assert_eq!(heap.slots.len(), 1);
        assert_eq!(heap.len(), 0);
    }

    #[test]
    fn stale_keys_do_not_touch_the_new_owner_of_a_slot() {
        let base = Instant::now();
        let mut heap = TimerHeap::new();
        let old = heap.insert(base, Waker::noop().clone());
        heap.remove(old);
        let new = heap.insert(base + Duration::from_secs(1), Waker::noop().clone());
        assert_eq!(old.slot, new.slot);
        heap.remove(old);
        assert_eq!(heap.len(), 1);
        assert!(!heap.is_fired(old));
        fire(&mut heap, base + Duration::from_secs(2));
        assert!(heap.is_fired(new));
        assert!(!heap.is_fired(old));
    }

    #[test]
    fn set_waker_replaces_the_task_to_wake() {
        let base = Instant::now();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut heap = TimerHeap::new();
        let key = heap.insert(base, recorder(1, &log));
        heap.set_waker(key, &recorder(2, &log));
        fire(&mut heap, base);
        assert_eq!(*log.lock().unwrap(), [2]);
    }

    /// Random inserts, removes and fires against a sorted-vector model.
    #[test]
    fn matches_a_sorted_model_under_random_operations() {
        let base = Instant::now();
        let woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut heap = TimerHeap::new();
        // (deadline in ms, seq, key) of the pending timers.
        let mut model: Vec<(u64, u64, TimerKey)> = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut now_ms = 0;
        let mut seq = 0;
        for _ in 0..20_000 {
            match next() % 4 {
                0 | 1 => {
                    let at = now_ms + next() % 1000;
                    let waker = Waker::from(Arc::new(Count(Arc::clone(&woken))));
                    let key = heap.insert(base + Duration::from_millis(at), waker);
                    model.push((at, seq, key));
                    seq += 1;
                }
                2 if !model.is_empty() => {
                    let victim = model.swap_remove((next() % model.len() as u64) as usize);
                    heap.remove(victim.2);
                }
                _ => {
                    now_ms += next() % 300;
                    model.sort_by_key(|(at, seq, _)| (*at, *seq));
                    let due = model.iter().take_while(|(at, ..)| *at <= now_ms).count();
                    let mut wakers = Vec::new();
                    assert_eq!(
                        heap.fire_expired(base + Duration::from_millis(now_ms), &mut wakers),
                        due
                    );
                    for (_, _, key) in model.drain(..due) {
                        assert!(heap.is_fired(key));
                        heap.remove(key);
                    }
                }
            }
            assert_eq!(heap.len(), model.len());
            let earliest = model.iter().map(|(at, ..)| *at).min();
            assert_eq!(
                heap.next_deadline(),
                earliest.map(|at| base + Duration::from_millis(at))
            );
        }
        assert!(heap.slots.len() <= 20_000);
    }
}

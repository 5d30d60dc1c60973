//! Time in the runtime: [`sleep`], [`sleep_until`], [`timeout`] and the timer heap behind them, the
//! event loop's indexed binary heap holding wakers, which removes a cancelled timer at once, so dropped
//! sleeps never pile up. Layer 3, the coroutine runtime.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::executor;
use super::reactor::Reactor;
use crate::event_loop::Timer;
use crate::event_loop::timers::Timers;

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
    timer: Option<(Rc<Reactor>, Timer)>,
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
            if reactor.timers.borrow_mut().set_waker(*key, cx.waker()) {
                return Poll::Pending;
            }
            // Only this sleep removes its timer, so a timer no longer pending has fired.
            this.timer = None;
            this.done = true;
            return Poll::Ready(());
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

/// The pending timers of one runtime, each waking a task once the clock reaches its deadline: the
/// event loop's [`Timers`] holding wakers, so insert, remove and fire are O(log n), a removed timer
/// leaves nothing behind, and equal deadlines fire in insertion order. A timer is gone from the heap
/// once it fired, so its key is then stale; memory is that of the most timers ever pending at once.
#[derive(Debug)]
pub(crate) struct TimerHeap {
    /// Every timer here is pending: fired and removed ones are taken out at once.
    timers: Timers<Waker>,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap {
            timers: Timers::new(),
        }
    }

    /// The number of timers that have not fired.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    /// The earliest deadline of a timer that has not fired.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Adds a timer that wakes `waker` once the clock reaches `deadline`.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> Timer {
        self.timers.insert(deadline, waker)
    }

    /// Replaces the waker of a pending timer, unless it would wake the same task already. Returns
    /// whether the timer is still pending (`false`: it fired or was removed).
    #[inline]
    pub(crate) fn set_waker(&mut self, key: Timer, waker: &Waker) -> bool {
        let Some(old) = self.timers.get_mut(key) else {
            return false;
        };
        if !old.will_wake(waker) {
            *old = waker.clone();
        }
        true
    }

    /// Removes a pending timer, freeing its slot; a fired timer or a stale key does nothing.
    #[inline]
    pub(crate) fn remove(&mut self, key: Timer) {
        self.timers.cancel(key);
    }

    /// Fires every timer whose deadline is at or before `now`, in deadline order, moving their
    /// wakers into `wakers` and freeing their slots. Returns how many fired.
    pub(crate) fn fire_expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        let mut fired = 0;
        while let Some((_, waker)) = self.timers.pop_due(now, u64::MAX) {
            wakers.push(waker);
            fired += 1;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    // The heap itself (order, stale handles, reuse, random operations) is tested with `Timers`; these
    // test what the runtime adds: wakers, firing, and its own random-operations model.
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
        // A fired timer is gone at once: its key is stale, removing it or setting its waker does
        // nothing, and the slots are all free for reuse.
        for key in &keys {
            assert!(!heap.set_waker(*key, &recorder(999, &log)));
            heap.remove(*key);
        }
        heap.timers.check();
        assert_eq!(heap.timers.slots_len(), 100);
        for round in 0..1000u64 {
            let key = heap.insert(base + Duration::from_secs(round), Waker::noop().clone());
            assert!(heap.set_waker(key, Waker::noop()));
            heap.remove(key);
        }
        assert_eq!(heap.timers.slots_len(), 100);
        assert_eq!(heap.len(), 0);
        assert_eq!(fire(&mut heap, base + Duration::from_secs(10_000)), 0);
        assert_eq!(log.lock().unwrap().len(), 50);
    }

    #[test]
    fn stale_keys_do_not_touch_the_new_owner_of_a_slot() {
        let base = Instant::now();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut heap = TimerHeap::new();
        let old = heap.insert(base, recorder(1, &log));
        heap.remove(old);
        let new = heap.insert(base + Duration::from_secs(1), recorder(2, &log));
        assert_eq!(heap.timers.slots_len(), 1);
        heap.remove(old);
        assert!(!heap.set_waker(old, &recorder(3, &log)));
        assert_eq!(heap.len(), 1);
        assert_eq!(fire(&mut heap, base + Duration::from_secs(2)), 1);
        assert_eq!(*log.lock().unwrap(), [2]);
        assert!(!heap.set_waker(new, &recorder(4, &log)));
    }

    #[test]
    fn set_waker_replaces_the_task_to_wake() {
        let base = Instant::now();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut heap = TimerHeap::new();
        let key = heap.insert(base, recorder(1, &log));
        assert!(heap.set_waker(key, &recorder(2, &log)));
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
        let mut model: Vec<(u64, u64, Timer)> = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut now_ms = 0;
        let mut seq = 0;
        let mut fired_total = 0;
        let mut peak = 0;
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
                    assert!(heap.set_waker(victim.2, Waker::noop()));
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
                    fired_total += due;
                    wakers.into_iter().for_each(Waker::wake);
                    for (_, _, key) in model.drain(..due) {
                        assert!(!heap.set_waker(key, Waker::noop()));
                        heap.remove(key);
                    }
                }
            }
            peak = peak.max(model.len());
            assert_eq!(heap.len(), model.len());
            let earliest = model.iter().map(|(at, ..)| *at).min();
            assert_eq!(
                heap.next_deadline(),
                earliest.map(|at| base + Duration::from_millis(at))
            );
        }
        heap.timers.check();
        assert_eq!(woken.load(Ordering::Relaxed), fired_total);
        assert_eq!(heap.timers.slots_len(), peak);
    }
}

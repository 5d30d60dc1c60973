//! The reactor: one [`Selector`] per runtime, a readiness cache and a reader and a writer waker per
//! registered fd, and the runtime's timers. Layer 3, the coroutine runtime.
//!
//! On epoll every fd is registered once, edge-triggered, for reading and writing: the kernel reports
//! each new readiness once and no `epoll_ctl` is ever needed again until the fd is dropped. select and
//! poll have no edge mode, and level triggering would report an idle writable socket on every wait, so
//! there each fd is registered oneshot for what its waiting tasks want, re-armed only when a task has
//! to wait (a change in user space for those two backends, not a system call).
//!
//! Either way a readiness, once reported, is cached until an IO call says `WouldBlock`; only then does
//! the task wait, and an event wakes only the task waiting for that direction.
//!
//! A waiting task's waker stays in its fd's slot after it is woken (`wake_by_ref`), with a bit saying
//! whether the task still waits: its next wait finds the same waker there (`will_wake`), so a message
//! costs no waker clone or drop. Events are dispatched after the wait, by [`Reactor::wake`], once the
//! runtime no longer counts as parked, and each wake happens while the selector is not borrowed, so a
//! waker may run any code.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Error;
use super::time::TimerHeap;
use crate::selector::{BackendKind, Events, Interest, Ready, Selector, Trigger};

/// Readiness-cache bit: a read may not block.
const READABLE: u8 = 1;
/// Readiness-cache bit: a write may not block.
const WRITABLE: u8 = 1 << 1;
/// Readiness-cache bit, sticky: the peer shut down its side or the socket failed; reads return at once
/// from now on, so readability is never cleared on a short read.
const READ_CLOSED: u8 = 1 << 2;

/// How many events one [`Reactor::wake`] dispatches: the tasks they wake run before the next ones
/// are looked at, so what a wake touched (the fd's slot, the task's header) is still in the cache when
/// the task runs, however many events one wait returned.
const DISPATCH_CHUNK: usize = 32;

/// How many IO readiness checks one task may pass in one poll before it is made to yield, so a task
/// on a socket that is always ready cannot starve the others (tokio's coop budget, same size).
const BUDGET: u32 = 128;

/// The direction a task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn bit(self) -> u8 {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// What a new registration assumes before the first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Initial {
    /// Try reading and writing at once; a `WouldBlock` then waits. For accepted and bound sockets.
    Optimistic,
    /// Wait for the first event. For a socket whose connect is in progress.
    Unknown,
}

/// The per-fd state the reactor and the IO object share.
pub(crate) struct IoSlot {
    fd: RawFd,
    /// [`READABLE`], [`WRITABLE`] and [`READ_CLOSED`] bits.
    readiness: Cell<u8>,
    /// [`READABLE`] and [`WRITABLE`] bits: a task waits for that direction, with its waker in `reader`
    /// or `writer`. A waker whose bit is clear is only kept for reuse and is not woken.
    waiting: Cell<u8>,
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
    /// What the oneshot registration is armed for (select and poll); `None` once it has fired.
    armed: Cell<Option<Interest>>,
}

impl std::fmt::Debug for IoSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoSlot")
            .field("fd", &self.fd)
            .field("readiness", &self.readiness.get())
            .field("waiting", &self.waiting.get())
            .field("armed", &self.armed.get())
            .finish_non_exhaustive()
    }
}

impl IoSlot {
    fn waker_cell(&self, direction: Direction) -> &Cell<Option<Waker>> {
        match direction {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        }
    }
}

/// The interest that `waiting` bits ([`READABLE`], [`WRITABLE`]) stand for, if any.
fn waiting_interest(waiting: u8) -> Option<Interest> {
    match (waiting & READABLE != 0, waiting & WRITABLE != 0) {
        (true, true) => Some(Interest::READ | Interest::WRITE),
        (true, false) => Some(Interest::READ),
        (false, true) => Some(Interest::WRITE),
        (false, false) => None,
    }
}

/// Wakes the waker in `cell` by reference and keeps it there for the task's next wait, unless a new
/// one was stored meanwhile.
fn wake_in_place(cell: &Cell<Option<Waker>>) {
    let Some(waker) = cell.take() else {
        return;
    };
    waker.wake_by_ref();
    let newer = cell.take();
    cell.set(Some(newer.unwrap_or(waker)));
}

/// One runtime's selector, timers and wake-up lists.
#[derive(Debug)]
pub(crate) struct Reactor {
    selector: RefCell<Selector<Rc<IoSlot>>>,
    /// The events of the last wait; [`Reactor::wake`] dispatches them a chunk at a time.
    events: RefCell<Events>,
    /// How many of `events` have been dispatched.
    dispatched: Cell<usize>,
    /// Timer wakers collected while the timers are borrowed, woken after: a waker may run arbitrary
    /// code. Reused, so the steady state allocates nothing.
    to_wake: RefCell<Vec<Waker>>,
    pub(crate) timers: RefCell<TimerHeap>,
    /// `Edge` on epoll, `Oneshot` on select and poll.
    trigger: Trigger,
    /// What is left of the running task's budget.
    budget: Cell<u32>,
}

impl Reactor {
    pub(crate) fn new(selector: Selector<Rc<IoSlot>>, event_capacity: usize) -> Reactor {
        let trigger = if selector.capabilities().edge {
            Trigger::Edge
        } else {
            Trigger::Oneshot
        };
        Reactor {
            selector: RefCell::new(selector),
            events: RefCell::new(Events::with_capacity(event_capacity)),
            dispatched: Cell::new(0),
            to_wake: RefCell::new(Vec::new()),
            timers: RefCell::new(TimerHeap::new()),
            trigger,
            budget: Cell::new(BUDGET),
        }
    }

    pub(crate) fn backend(&self) -> BackendKind {
        self.selector.borrow().backend()
    }

    /// Gives the task about to be polled a fresh budget.
    pub(crate) fn reset_budget(&self) {
        self.budget.set(BUDGET);
    }

    /// Takes one unit of the running task's budget; false once it is spent.
    fn consume_budget(&self) -> bool {
        let left = self.budget.get();
        if left == 0 {
            return false;
        }
        self.budget.set(left - 1);
        true
    }

    /// Registers `fd` and returns its slot.
    fn register(&self, fd: impl AsFd, initial: Initial) -> Result<Rc<IoSlot>, Error> {
        let fd = fd.as_fd();
        let readiness = match initial {
            Initial::Optimistic => READABLE | WRITABLE,
            Initial::Unknown => 0,
        };
        // Oneshot registrations start armed for reading: a spurious first report costs one event,
        // and interest changes are user-space updates on select and poll.
        let (interest, armed) = match self.trigger {
            Trigger::Edge => (Interest::READ | Interest::WRITE, None),
            _ => (Interest::READ, Some(Interest::READ)),
        };
        let slot = Rc::new(IoSlot {
            fd: fd.as_raw_fd(),
            readiness: Cell::new(readiness),
            waiting: Cell::new(0),
            reader: Cell::new(None),
            writer: Cell::new(None),
            armed: Cell::new(armed),
        });
        self.selector
            .borrow_mut()
            .register_with(fd, interest, self.trigger, Rc::clone(&slot))?;
        Ok(slot)
    }

    fn deregister(&self, fd: RawFd) {
        // Only NotRegistered (impossible: each slot is registered once) or an OS refusal other than
        // EBADF/ENOENT can come back; the fd is about to be closed, which drops it from the kernel's
        // set anyway.
        let _ = self.selector.borrow_mut().unregister(fd);
    }

    /// Waits for IO events (up to `timeout`, `None` forever); [`wake`](Reactor::wake) dispatches them.
    /// Call it only once the last wait's events are all dispatched.
    pub(crate) fn poll_events(&self, timeout: Option<Duration>) -> Result<(), Error> {
        self.dispatched.set(0);
        self.selector
            .borrow_mut()
            .select(&mut self.events.borrow_mut(), timeout)?;
        Ok(())
    }

    /// Whether events of the last wait are still to be dispatched.
    pub(crate) fn has_undispatched(&self) -> bool {
        self.dispatched.get() < self.events.borrow().len()
    }

    /// Dispatches the next chunk of the last wait's events — updating the readiness caches and waking
    /// the tasks waiting for what became ready — then fires the timers that are due. Called once the
    /// runtime no longer counts as parked, so these wakes never write to the selector's waker.
    ///
    /// An event dispatched after tasks ran may be about an fd that was closed meanwhile and whose
    /// number a new registration took: it then marks that one ready, a spurious readiness its next IO
    /// call corrects (`WouldBlock`), as the selector's contract allows.
    pub(crate) fn wake(&self) {
        self.dispatch_events();
        self.fire_timers();
        self.wake_collected();
    }

    fn dispatch_events(&self) {
        let events = self.events.borrow();
        let start = self.dispatched.get();
        let end = events.len().min(start + DISPATCH_CHUNK);
        self.dispatched.set(end);
        for event in events.iter().take(end).skip(start) {
            // Cloned out of a short borrow: the wakes below may register or drop fds.
            let Some(slot) = self
                .selector
                .borrow()
                .get(event.fd())
                .map(|key| Rc::clone(key.data()))
            else {
                continue;
            };
            let bits = readiness_bits(event.ready());
            slot.readiness.set(slot.readiness.get() | bits);
            let waiting = slot.waiting.get();
            let mut woken = waiting & bits;
            if self.trigger == Trigger::Oneshot {
                // The selector disarmed the fd when it reported it; re-arm for whoever still waits.
                slot.armed.set(None);
                if let Some(interest) = waiting_interest(waiting & !woken) {
                    match self
                        .selector
                        .borrow_mut()
                        .modify_interest(slot.fd, interest)
                    {
                        Ok(()) => slot.armed.set(Some(interest)),
                        Err(_) => {
                            // Let the waiting tasks' next IO call report what is wrong.
                            slot.readiness.set(READABLE | WRITABLE | READ_CLOSED);
                            woken = waiting;
                        }
                    }
                }
            }
            if woken == 0 {
                continue;
            }
            slot.waiting.set(waiting & !woken);
            if woken & READABLE != 0 {
                wake_in_place(&slot.reader);
            }
            if woken & WRITABLE != 0 {
                wake_in_place(&slot.writer);
            }
        }
    }

    /// Fires the timers that are due, collecting their wakers. Reads the clock only if a timer is
    /// pending.
    fn fire_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        let Some(deadline) = timers.next_deadline() else {
            return;
        };
        let now = Instant::now();
        if deadline <= now {
            timers.fire_expired(now, &mut self.to_wake.borrow_mut());
        }
    }

    fn wake_collected(&self) {
        loop {
            // Taken one at a time: a waker run here may touch the reactor, never while it is borrowed.
            let Some(waker) = self.to_wake.borrow_mut().pop() else {
                break;
            };
            waker.wake();
        }
    }

    /// The earliest timer deadline, if any timer is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.borrow().next_deadline()
    }
}

/// The readiness-cache bits an event sets. An error, a hang-up or a closed fd makes both directions
/// "ready", so whichever task waits tries its IO call and gets the error from it.
fn readiness_bits(ready: Ready) -> u8 {
    let failed = ready.is_error() || ready.is_hup() || ready.is_invalid();
    let mut bits = 0;
    if ready.is_readable() || ready.is_read_closed() || failed {
        bits |= READABLE;
    }
    if ready.is_writable() || failed {
        bits |= WRITABLE;
    }
    if ready.is_read_closed() || failed {
        bits |= READ_CLOSED;
    }
    bits
}

/// An fd registered with the current runtime's reactor; unregistered on drop, which must come before
/// the fd is closed (IO objects declare it before their socket, so it is dropped first).
#[derive(Debug)]
pub(crate) struct Registration {
    reactor: Rc<Reactor>,
    slot: Rc<IoSlot>,
}

impl Registration {
    /// Registers `fd` with the current runtime.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a runtime, [`Error::Selector`] if the selector refuses the fd.
    pub(crate) fn new(fd: impl AsFd, initial: Initial) -> Result<Registration, Error> {
        let reactor = super::executor::current_reactor("register a socket")?;
        let slot = reactor.register(fd, initial)?;
        Ok(Registration { reactor, slot })
    }

    /// The backend of the runtime this fd is registered with.
    pub(crate) fn backend(&self) -> BackendKind {
        self.reactor.backend()
    }

    /// Ready if the cache says `direction` may not block; otherwise records the task's waker (re-arming
    /// a oneshot registration if needed) and returns `Pending`. Also `Pending`, after a self-wake, once
    /// the task has spent its budget.
    ///
    /// # Errors
    /// Re-arming a oneshot registration failed (the selector no longer knows the fd).
    pub(crate) fn poll_ready(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.reactor.consume_budget() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let slot = &*self.slot;
        if slot.readiness.get() & direction.bit() != 0 {
            return Poll::Ready(Ok(()));
        }
        let cell = slot.waker_cell(direction);
        let old = cell.take();
        match old {
            Some(old) if old.will_wake(cx.waker()) => cell.set(Some(old)),
            _ => cell.set(Some(cx.waker().clone())),
        }
        slot.waiting.set(slot.waiting.get() | direction.bit());
        if self.reactor.trigger == Trigger::Oneshot {
            let wanted = match direction {
                Direction::Read => Interest::READ,
                Direction::Write => Interest::WRITE,
            };
            let armed = slot.armed.get();
            if armed.is_none_or(|armed| armed.add(wanted) != armed) {
                let interest = armed.map_or(wanted, |armed| armed.add(wanted));
                if let Err(error) = self
                    .reactor
                    .selector
                    .borrow_mut()
                    .modify_interest(slot.fd, interest)
                {
                    slot.waiting.set(slot.waiting.get() & !direction.bit());
                    return Poll::Ready(Err(io::Error::from(Error::from(error))));
                }
                slot.armed.set(Some(interest));
            }
        }
        Poll::Pending
    }

    /// Forgets a cached readiness after an IO call said `WouldBlock`.
    pub(crate) fn clear_ready(&self, direction: Direction) {
        let slot = &self.slot;
        slot.readiness.set(slot.readiness.get() & !direction.bit());
    }

    /// Forgets the cached readability after a short read of a stream socket — the kernel handed over
    /// all it had, and new data will bring a new event — unless the peer has shut down, whose end of
    /// stream is reported only once. This saves the read that would only say `WouldBlock` (nginx does
    /// the same with EPOLLRDHUP).
    pub(crate) fn clear_read_after_short_read(&self) {
        let slot = &self.slot;
        let readiness = slot.readiness.get();
        if readiness & READ_CLOSED == 0 {
            slot.readiness.set(readiness & !READABLE);
        }
    }

    /// Runs the non-blocking `operation` once `direction` is ready, clearing the readiness and waiting
    /// again whenever it says `WouldBlock`; retries `Interrupted`.
    pub(crate) fn poll_io<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut operation: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match self.poll_ready(direction, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
            match operation() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.clear_ready(direction);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.reactor.deregister(self.slot.fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_make_both_directions_ready() {
        assert_eq!(readiness_bits(Ready::READABLE), READABLE);
        assert_eq!(readiness_bits(Ready::WRITABLE), WRITABLE);
        assert_eq!(
            readiness_bits(Ready::READABLE | Ready::READ_CLOSED),
            READABLE | READ_CLOSED
        );
        for failure in [Ready::ERROR, Ready::HUP, Ready::INVALID] {
            assert_eq!(
                readiness_bits(failure),
                READABLE | WRITABLE | READ_CLOSED,
                "{failure:?}"
            );
        }
    }
}

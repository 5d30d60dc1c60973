//! The executor: a single-threaded run queue of tasks, the loop of [`Runtime::block_on`] that polls
//! them and turns the reactor, and the wake path that works from any thread. Layer 3, the coroutine
//! runtime.
//!
//! A task's future stays on the runtime's thread (it need not be `Send`); its [`Waker`] is an
//! `Arc<Header>` that only holds what a wake needs, so it can be sent anywhere. A header carries a
//! `scheduled` flag so a task is queued at most once however often it is woken, and a finished task's
//! flag stays set so late wakes cost nothing.
//!
//! A wake takes one of two paths. On the runtime's own thread — IO readiness, timers, a task waking
//! another, which is nearly every wake — it appends the task's slot number and id to the runtime's
//! local queue: no lock, no fence, no reference count. From any other thread it pushes the header on a
//! mutex-protected queue and, only when the runtime is asleep in its selector, writes to the
//! selector's [`Waker`](SelectorWaker) once. Each tick takes both queues.
//!
//! [`Runtime::block_on`]: super::Runtime::block_on

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::Error;
use super::reactor::Reactor;
use super::task::{Completion, JoinHandle, JoinState};
use crate::selector::Waker as SelectorWaker;

/// How many tasks run between two looks at the selector while tasks keep being ready (tokio's
/// current_thread `event_interval`), so IO and timers are never starved by busy tasks.
const EVENT_INTERVAL: u32 = 61;

/// The header index of the future given to `block_on`, which lives on that call's stack.
const MAIN: usize = usize::MAX;

thread_local! {
    /// The runtime whose `block_on` is running on this thread (or that is dropping its tasks).
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// Whether a `block_on` is running on this thread: a nested one would block the outer one's tasks.
    static IN_BLOCK_ON: Cell<bool> = const { Cell::new(false) };
}

/// The runtime of this thread, if one is running.
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The reactor of this thread's runtime.
///
/// # Errors
/// [`Error::NoRuntime`] naming `operation` outside a runtime.
pub(crate) fn current_reactor(operation: &'static str) -> Result<Rc<Reactor>, Error> {
    CURRENT
        .with(|current| {
            current
                .borrow()
                .as_ref()
                .map(|core| Rc::clone(&core.reactor))
        })
        .ok_or(Error::NoRuntime { operation })
}

/// Makes `core` the current runtime until dropped, then restores the previous one.
struct Enter {
    previous: Option<Rc<Core>>,
}

impl Enter {
    fn new(core: &Rc<Core>) -> Enter {
        let previous = CURRENT.with(|current| current.replace(Some(Rc::clone(core))));
        Enter { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Marks this thread as inside `block_on` until dropped (also when the main future panics).
struct InBlockOn;

impl InBlockOn {
    fn new() -> InBlockOn {
        assert!(
            !IN_BLOCK_ON.with(Cell::get),
            "block_on called inside a runtime: it would block the tasks of the outer one; \
             spawn the future or await it instead"
        );
        IN_BLOCK_ON.with(|flag| flag.set(true));
        InBlockOn
    }
}

impl Drop for InBlockOn {
    fn drop(&mut self) {
        IN_BLOCK_ON.with(|flag| flag.set(false));
    }
}

/// What wakers share with their runtime: everything here is `Send + Sync`.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Tasks woken from other threads since the runtime last took the queue.
    queue: Mutex<VecDeque<Arc<Header>>>,
    /// Set after a push on `queue`, cleared by the runtime when it takes the queue: lets a tick skip
    /// the lock when no other thread woke anything.
    queued: AtomicBool,
    /// The runtime is (about to be) blocked in its selector: a wake must write to `selector_waker`.
    parked: AtomicBool,
    /// A write to `selector_waker` is on its way for this park: later wakes need not write again.
    notified: AtomicBool,
    /// The runtime is gone: wakes do nothing.
    closed: AtomicBool,
    selector_waker: SelectorWaker,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Header>>> {
        // A panic never happens while the lock is held (only push, pop and swap run under it), so a
        // poisoned lock still guards a consistent queue.
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Queues a task woken from another thread (or on the runtime's thread while no `block_on` runs).
    fn schedule(&self, header: Arc<Header>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.lock().push_back(header);
        self.queued.store(true, Ordering::Release);
        // Pairs with the fence in `Core::refill_or_park`: either the runtime sees `queued`, or this
        // sees that the runtime parked and wakes it.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && !self.notified.swap(true, Ordering::AcqRel) {
            // Fails only once the selector is closed, i.e. the runtime is gone.
            let _ = self.selector_waker.wake();
        }
    }
}

/// A task as its wakers see it.
#[derive(Debug)]
pub(crate) struct Header {
    /// The task's slot in the runtime's task table, or [`MAIN`].
    index: usize,
    /// Unique within the runtime (the task's id; a fresh one for each `block_on`'s main future), so a
    /// queue entry left by a finished task never runs the next task in its slot.
    id: u64,
    /// The task is queued (or finished, which keeps it from ever being queued again).
    scheduled: AtomicBool,
    /// [`JoinHandle::abort`] was called: the next poll drops the future instead.
    aborted: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if !self.schedule_local() {
            self.shared.schedule(Arc::clone(self));
        }
    }
}

impl Header {
    /// Cancels the task: marks it and queues it unless it is queued or finished (used by
    /// `JoinHandle::abort`).
    pub(crate) fn abort(self: &Arc<Self>) {
        self.aborted.store(true, Ordering::Release);
        Wake::wake_by_ref(self);
    }

    /// Appends the task to its runtime's local queue if that runtime's `block_on` is running on this
    /// thread; returns whether it did.
    fn schedule_local(&self) -> bool {
        CURRENT.with(|current| {
            let Ok(current) = current.try_borrow() else {
                return false;
            };
            match current.as_deref() {
                Some(core) if Arc::ptr_eq(&core.shared, &self.shared) => {
                    let Ok(mut ready) = core.ready.try_borrow_mut() else {
                        return false;
                    };
                    ready.push_back(Entry {
                        index: self.index,
                        id: self.id,
                    });
                    true
                }
                _ => false,
            }
        })
    }
}

/// A queued task: its slot and its id, checked against the slot's task when it is taken.
#[derive(Debug, Clone, Copy)]
struct Entry {
    index: usize,
    id: u64,
}

impl From<Arc<Header>> for Entry {
    fn from(header: Arc<Header>) -> Entry {
        Entry {
            index: header.index,
            id: header.id,
        }
    }
}

/// A spawned task as the executor sees it, whatever its output type.
trait Task {
    fn header(&self) -> &Arc<Header>;
    /// Polls the future once with the task's own waker; when it is done, hands its output to the join
    /// state (which wakes whoever awaits the handle).
    fn poll_task(self: Pin<&mut Self>) -> Poll<()>;
    /// The task's join state, to report a cancellation or a panic.
    fn completion(&self) -> Rc<dyn Completion>;
}

pin_project_lite::pin_project! {
    /// A task in one allocation: what its poll needs, then its future. The table holds only a pointer
    /// to it, so polling a task touches the table's dense array and this, not a third place.
    struct Spawned<F>
    where
        F: Future,
    {
        header: Arc<Header>,
        // Built once at spawn, so polling never touches the header's reference count.
        waker: Waker,
        state: Rc<JoinState<F::Output>>,
        #[pin]
        future: F,
    }
}

impl<F> Task for Spawned<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn header(&self) -> &Arc<Header> {
        &self.header
    }

    fn poll_task(self: Pin<&mut Self>) -> Poll<()> {
        let this = self.project();
        let mut cx = Context::from_waker(this.waker);
        match this.future.poll(&mut cx) {
            Poll::Ready(output) => {
                this.state.complete(output);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn completion(&self) -> Rc<dyn Completion> {
        self.state.clone()
    }
}

/// A task, out of the table while it is polled.
type Running = Pin<Box<dyn Task>>;

/// One entry of the task table.
enum Slot {
    /// Free for the next task.
    Free,
    /// A task waiting to be polled.
    Waiting(Running),
    /// A task being polled: it is out of the table meanwhile.
    Polling,
}

/// The tasks of one runtime: a slab indexed by `Header::index`, free slots reused.
#[derive(Default)]
struct Tasks {
    slots: Vec<Slot>,
    free: Vec<usize>,
    len: usize,
}

impl Tasks {
    fn insert(&mut self, make: impl FnOnce(usize) -> Running) -> usize {
        let index = self.free.pop().unwrap_or(self.slots.len());
        let slot = Slot::Waiting(make(index));
        if index == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[index] = slot;
        }
        self.len += 1;
        index
    }

    /// Takes the task of `entry` out for polling, if it is still the one in the slot and waiting.
    fn take_for_poll(&mut self, entry: Entry) -> Option<Running> {
        let slot = self.slots.get_mut(entry.index)?;
        match slot {
            Slot::Waiting(running) if running.header().id == entry.id => {}
            _ => return None,
        }
        match std::mem::replace(slot, Slot::Polling) {
            Slot::Waiting(running) => Some(running),
            _ => None,
        }
    }

    /// Frees the slot of a task that is not in the table (finished or being dropped).
    fn release(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index)
            && !matches!(slot, Slot::Free)
        {
            *slot = Slot::Free;
            self.free.push(index);
            self.len -= 1;
        }
    }
}

/// One runtime's state: its tasks, its reactor, and what its wakers share.
pub(crate) struct Core {
    pub(crate) reactor: Rc<Reactor>,
    shared: Arc<Shared>,
    tasks: RefCell<Tasks>,
    /// Tasks woken on this thread (and spawned) since the last tick began.
    ready: RefCell<VecDeque<Entry>>,
    /// The tasks of the current tick, taken from `ready` in one swap (and from the shared queue);
    /// tasks woken during the tick run in the next one. Kept here so a `block_on` that returns
    /// mid-tick loses none.
    batch: RefCell<VecDeque<Entry>>,
    next_id: Cell<u64>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("backend", &self.reactor.backend())
            .field("tasks", &self.tasks.borrow().len)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(reactor: Reactor, selector_waker: SelectorWaker) -> Core {
        Core {
            reactor: Rc::new(reactor),
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                queued: AtomicBool::new(false),
                parked: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                selector_waker,
            }),
            tasks: RefCell::new(Tasks::default()),
            ready: RefCell::new(VecDeque::new()),
            batch: RefCell::new(VecDeque::new()),
            next_id: Cell::new(1),
        }
    }

    /// The number of tasks that have not finished.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len
    }

    /// A fresh id for a task or a `block_on`'s main future.
    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.next_id();
        let state = Rc::new(JoinState::new(id));
        let mut header = None;
        let index = self.tasks.borrow_mut().insert(|index| {
            let new = Arc::new(Header {
                index,
                id,
                scheduled: AtomicBool::new(true),
                aborted: AtomicBool::new(false),
                shared: Arc::clone(&self.shared),
            });
            header = Some(Arc::clone(&new));
            Box::pin(Spawned {
                waker: Waker::from(Arc::clone(&new)),
                header: new,
                state: Rc::clone(&state),
                future,
            })
        });
        // Spawned tasks are created scheduled, so they are queued exactly once, here.
        self.ready.borrow_mut().push_back(Entry { index, id });
        let header = header.expect("Tasks::insert calls make exactly once");
        JoinHandle::new(state, header)
    }

    /// Runs `future` to completion on this thread, running the spawned tasks meanwhile.
    pub(crate) fn block_on<F: Future>(self: &Rc<Self>, future: F) -> F::Output {
        let _in_block_on = InBlockOn::new();
        let _enter = Enter::new(self);
        let mut future = pin!(future);
        let main = Arc::new(Header {
            index: MAIN,
            id: self.next_id(),
            scheduled: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            shared: Arc::clone(&self.shared),
        });
        let main_waker = Waker::from(Arc::clone(&main));
        let mut cx = Context::from_waker(&main_waker);
        let mut poll_main = true;
        // Polls (of tasks and of the main future) since the selector was last looked at.
        let mut since_io = 0;
        loop {
            if poll_main {
                poll_main = false;
                self.reactor.reset_budget();
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
                since_io += 1;
            }
            if since_io >= EVENT_INTERVAL {
                since_io = 0;
                self.poll_events_now();
            }
            let next = self.batch.borrow_mut().pop_front();
            let Some(entry) = next else {
                if self.refill_or_park() {
                    since_io = 0;
                }
                continue;
            };
            if entry.index == MAIN {
                // A stale entry of an earlier block_on's main future is dropped here.
                if entry.id == main.id {
                    main.scheduled.store(false, Ordering::Release);
                    poll_main = true;
                }
                continue;
            }
            self.run_task(entry);
            since_io += 1;
        }
    }

    /// Starts the next tick with the tasks woken since the last one; if there are none, waits in the
    /// selector until IO, a timer or a wake from another thread. Returns whether it waited.
    fn refill_or_park(&self) -> bool {
        if self.refill() {
            return false;
        }
        if self.reactor.has_undispatched() {
            // The last wait's next events wake the next tasks.
            self.reactor.wake();
            return false;
        }
        self.shared.parked.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Shared::schedule`.
        fence(Ordering::SeqCst);
        if self.shared.queued.load(Ordering::Relaxed) {
            self.shared.parked.store(false, Ordering::Relaxed);
            return false;
        }
        let timeout = self
            .reactor
            .next_deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        self.poll_events(timeout);
        // Cleared before the wakes below: they come from this thread, which is awake now.
        self.shared.parked.store(false, Ordering::Relaxed);
        self.shared.notified.store(false, Ordering::Release);
        self.reactor.wake();
        true
    }

    /// Moves the tasks woken since the last tick into the (empty) batch: those of this thread, then
    /// those of other threads. Returns whether there are any.
    fn refill(&self) -> bool {
        let mut batch = self.batch.borrow_mut();
        std::mem::swap(&mut *self.ready.borrow_mut(), &mut *batch);
        // Loaded first: the swap, a read-modify-write, only when another thread did queue something.
        if self.shared.queued.load(Ordering::Relaxed)
            && self.shared.queued.swap(false, Ordering::Acquire)
        {
            let remote = std::mem::take(&mut *self.shared.lock());
            batch.extend(remote.into_iter().map(Entry::from));
        }
        !batch.is_empty()
    }

    /// Looks at IO and timers without waiting, between two tasks of a busy tick: the next events of
    /// the last wait, or a new wait that does not block once those are all dispatched.
    fn poll_events_now(&self) {
        if !self.reactor.has_undispatched() {
            self.poll_events(Some(Duration::ZERO));
        }
        self.reactor.wake();
    }

    /// Waits for IO events. A wait the kernel refuses for lack of memory (`ENOMEM`, `EAGAIN`) is
    /// retried every millisecond until memory is found: the runtime neither dies nor spins meanwhile.
    fn poll_events(&self, timeout: Option<Duration>) {
        loop {
            match self.reactor.poll_events(timeout) {
                Ok(()) => return,
                Err(Error::Selector(error))
                    if error.os_error().is_some_and(|os| {
                        os.raw_os_error() == Some(libc::ENOMEM)
                            || os.kind() == io::ErrorKind::WouldBlock
                    }) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(error) => panic!(
                    "the runtime's selector failed to wait ({error}); it only holds fds the runtime \
                     registered and unregisters them before they close, so this is a bug"
                ),
            }
        }
    }

    fn run_task(&self, entry: Entry) {
        // None: queued before its task finished (the slot is free or has a new task now).
        let Some(mut running) = self.tasks.borrow_mut().take_for_poll(entry) else {
            return;
        };
        let header = running.header();
        // Cleared before the poll, so a wake during the poll queues the task again.
        header.scheduled.store(false, Ordering::Release);
        if header.aborted.load(Ordering::Acquire) {
            self.finish(header);
            let completion = running.completion();
            drop(running);
            completion.fail(Error::Cancelled {
                task: completion.id(),
            });
            return;
        }
        self.reactor.reset_budget();
        let outcome = catch_unwind(AssertUnwindSafe(|| running.as_mut().poll_task()));
        match outcome {
            Ok(Poll::Pending) => {
                let mut tasks = self.tasks.borrow_mut();
                if let Some(slot) = tasks.slots.get_mut(entry.index) {
                    *slot = Slot::Waiting(running);
                }
            }
            Ok(Poll::Ready(())) => {
                self.finish(running.header());
                drop(running);
            }
            Err(payload) => {
                self.finish(running.header());
                let completion = running.completion();
                drop(running);
                completion.fail(Error::Panicked {
                    task: completion.id(),
                    message: panic_message(payload.as_ref()),
                });
            }
        }
    }

    /// Frees a finished task's slot; its header stays `scheduled` forever so later wakes do nothing.
    fn finish(&self, header: &Header) {
        header.scheduled.store(true, Ordering::Release);
        self.tasks.borrow_mut().release(header.index);
    }

    /// Drops every task (with this runtime current, so their destructors may use it), then closes the
    /// wake path. Called once, when the `Runtime` is dropped.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let _enter = Enter::new(self);
        self.shared.closed.store(true, Ordering::Release);
        // A destructor may spawn: loop until the table stays empty.
        loop {
            let taken: Vec<Running> = {
                let mut tasks = self.tasks.borrow_mut();
                let mut taken = Vec::new();
                for index in 0..tasks.slots.len() {
                    if matches!(tasks.slots[index], Slot::Waiting(_))
                        && let Slot::Waiting(running) =
                            std::mem::replace(&mut tasks.slots[index], Slot::Polling)
                    {
                        taken.push(running);
                        tasks.release(index);
                    }
                }
                taken
            };
            if taken.is_empty() {
                break;
            }
            for running in taken {
                running.header().scheduled.store(true, Ordering::Release);
                let completion = running.completion();
                drop(running);
                completion.fail(Error::Cancelled {
                    task: completion.id(),
                });
            }
        }
        self.ready.borrow_mut().clear();
        self.batch.borrow_mut().clear();
        // Queued headers hold the shared state; break that cycle.
        let queued = std::mem::take(&mut *self.shared.lock());
        drop(queued);
    }
}

/// The text of a panic payload: `panic!` gives a `&str` or a `String`.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

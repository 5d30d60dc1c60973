//! The executor: a single-threaded run queue of tasks, the loop of [`Runtime::block_on`] that polls
//! them and turns the reactor, and the wake path that works from any thread. Layer 3, the coroutine
//! runtime.
//!
//! A task's future stays on the runtime's thread (it need not be `Send`); its [`Waker`] is an
//! `Arc<Header>` that only holds what a wake needs, so it can be sent anywhere. Waking pushes the
//! header on a mutex-protected queue — uncontended when the wake comes from the runtime itself — and,
//! only when the runtime is asleep in its selector, writes to the selector's [`Waker`](SelectorWaker)
//! once. A header carries a `scheduled` flag so a task is queued at most once however often it is
//! woken, and a finished task's flag stays set so late wakes cost nothing.
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
    /// Tasks woken since the runtime last took the queue.
    queue: Mutex<VecDeque<Arc<Header>>>,
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

    fn schedule(&self, header: Arc<Header>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.lock().push_back(header);
        // Pairs with the fence in `Core::park`: either the runtime sees this task in the queue, or
        // this sees that the runtime parked and wakes it.
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
    /// The task is queued (or finished, which keeps it from ever being queued again).
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let shared = Arc::clone(&self.shared);
            shared.schedule(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.shared.schedule(Arc::clone(self));
        }
    }
}

impl Header {
    /// Queues the task unless it is queued or finished (used by `JoinHandle::abort`).
    pub(crate) fn schedule(self: &Arc<Self>) {
        Wake::wake_by_ref(self);
    }
}

/// A task's future and what its poll needs, moved out of the table while it runs.
struct Running {
    future: Pin<Box<dyn Future<Output = ()>>>,
    /// Built once at spawn, so polling never touches the header's reference count.
    waker: Waker,
    /// The task's join state, to report a panic or a cancellation.
    completion: Rc<dyn Completion>,
}

struct Slot {
    header: Arc<Header>,
    /// `None` while the task is being polled.
    running: Option<Running>,
}

/// The tasks of one runtime: a slab indexed by `Header::index`, free slots reused.
#[derive(Default)]
struct Tasks {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    len: usize,
}

impl Tasks {
    fn insert(&mut self, make: impl FnOnce(usize) -> Slot) -> usize {
        let index = self.free.pop().unwrap_or(self.slots.len());
        let slot = make(index);
        if index == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[index] = Some(slot);
        }
        self.len += 1;
        index
    }

    fn remove(&mut self, index: usize) -> Option<Slot> {
        let slot = self.slots.get_mut(index)?.take()?;
        self.free.push(index);
        self.len -= 1;
        Some(slot)
    }
}

/// One runtime's state: its tasks, its reactor, and what its wakers share.
pub(crate) struct Core {
    pub(crate) reactor: Rc<Reactor>,
    shared: Arc<Shared>,
    tasks: RefCell<Tasks>,
    /// The tasks of the current tick, taken from the shared queue in one swap; tasks woken during the
    /// tick run in the next one. Kept here so a `block_on` that returns mid-tick loses none.
    batch: RefCell<VecDeque<Arc<Header>>>,
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
                parked: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                selector_waker,
            }),
            tasks: RefCell::new(Tasks::default()),
            batch: RefCell::new(VecDeque::new()),
            next_id: Cell::new(1),
        }
    }

    /// The number of tasks that have not finished.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let state = Rc::new(JoinState::new(id));
        let completion: Rc<dyn Completion> = state.clone();
        let result = Rc::clone(&state);
        let future = Box::pin(async move {
            let output = future.await;
            result.complete(output);
        });
        let mut header = None;
        self.tasks.borrow_mut().insert(|index| {
            let new = Arc::new(Header {
                index,
                scheduled: AtomicBool::new(true),
                shared: Arc::clone(&self.shared),
            });
            header = Some(Arc::clone(&new));
            Slot {
                running: Some(Running {
                    future,
                    waker: Waker::from(Arc::clone(&new)),
                    completion,
                }),
                header: new,
            }
        });
        let header = header.expect("Tasks::insert calls make exactly once");
        self.shared.schedule(Arc::clone(&header));
        JoinHandle::new(state, header)
    }

    /// Runs `future` to completion on this thread, running the spawned tasks meanwhile.
    pub(crate) fn block_on<F: Future>(self: &Rc<Self>, future: F) -> F::Output {
        let _in_block_on = InBlockOn::new();
        let _enter = Enter::new(self);
        let mut future = pin!(future);
        let main = Arc::new(Header {
            index: MAIN,
            scheduled: AtomicBool::new(false),
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
            let Some(header) = next else {
                if self.refill_or_park() {
                    since_io = 0;
                }
                continue;
            };
            if header.index == MAIN {
                // A stale main header of an earlier block_on is dropped here.
                if Arc::ptr_eq(&header, &main) {
                    main.scheduled.store(false, Ordering::Release);
                    poll_main = true;
                }
                continue;
            }
            self.run_task(header);
            since_io += 1;
        }
    }

    /// Starts the next tick with the tasks woken since the last one; if there are none, waits in the
    /// selector until IO, a timer or a wake from another thread. Returns whether it waited.
    fn refill_or_park(&self) -> bool {
        {
            let mut queue = self.shared.lock();
            if !queue.is_empty() {
                std::mem::swap(&mut *queue, &mut *self.batch.borrow_mut());
                return false;
            }
        }
        self.shared.parked.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Shared::schedule`.
        fence(Ordering::SeqCst);
        if !self.shared.lock().is_empty() {
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

    /// Looks at IO and timers without waiting, between two tasks of a busy tick.
    fn poll_events_now(&self) {
        self.poll_events(Some(Duration::ZERO));
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

    fn run_task(&self, header: Arc<Header>) {
        let mut running = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(Some(slot)) = tasks.slots.get_mut(header.index) else {
                return;
            };
            if !Arc::ptr_eq(&slot.header, &header) {
                return; // queued before its task finished; the slot has a new task now
            }
            let Some(running) = slot.running.take() else {
                return;
            };
            running
        };
        // Cleared before the poll, so a wake during the poll queues the task again.
        header.scheduled.store(false, Ordering::Release);
        if running.completion.is_aborted() {
            self.finish(&header);
            drop(running.future);
            running.completion.fail(Error::Cancelled {
                task: running.completion.id(),
            });
            return;
        }
        self.reactor.reset_budget();
        let mut cx = Context::from_waker(&running.waker);
        let outcome = catch_unwind(AssertUnwindSafe(|| running.future.as_mut().poll(&mut cx)));
        match outcome {
            Ok(Poll::Pending) => {
                let mut tasks = self.tasks.borrow_mut();
                if let Some(Some(slot)) = tasks.slots.get_mut(header.index) {
                    slot.running = Some(running);
                }
            }
            Ok(Poll::Ready(())) => {
                self.finish(&header);
                drop(running);
            }
            Err(payload) => {
                self.finish(&header);
                drop(running.future);
                running.completion.fail(Error::Panicked {
                    task: running.completion.id(),
                    message: panic_message(payload.as_ref()),
                });
            }
        }
    }

    /// Frees a finished task's slot; its header stays `scheduled` forever so later wakes do nothing.
    fn finish(&self, header: &Arc<Header>) {
        header.scheduled.store(true, Ordering::Release);
        let slot = self.tasks.borrow_mut().remove(header.index);
        // Dropped after the borrow ends: nothing of the task is left in it (its future was taken).
        drop(slot);
    }

    /// Drops every task (with this runtime current, so their destructors may use it), then closes the
    /// wake path. Called once, when the `Runtime` is dropped.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let _enter = Enter::new(self);
        self.shared.closed.store(true, Ordering::Release);
        // A destructor may spawn: loop until the table stays empty.
        loop {
            let slots: Vec<Slot> = {
                let mut tasks = self.tasks.borrow_mut();
                let indices: Vec<usize> = (0..tasks.slots.len()).collect();
                indices
                    .into_iter()
                    .filter_map(|index| tasks.remove(index))
                    .collect()
            };
            if slots.is_empty() {
                break;
            }
            for slot in slots {
                slot.header.scheduled.store(true, Ordering::Release);
                if let Some(running) = slot.running {
                    drop(running.future);
                    running.completion.fail(Error::Cancelled {
                        task: running.completion.id(),
                    });
                }
            }
        }
        // Queued headers hold the shared state; break that cycle.
        self.batch.borrow_mut().clear();
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

//! [`Handle`]: reaches an event loop from other threads to queue callbacks and stop it. Layer 2, the
//! callback event loop.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Callback, Error, EventLoop};
use crate::selector::{self, Waker};

/// A callback queued from another thread.
pub(crate) type RemoteTask<H> = Box<dyn FnOnce(&mut EventLoop<H>) + Send>;

/// What a loop shares with its handles.
pub(crate) struct Shared<H> {
    queue: Mutex<Queue<H>>,
    /// Set when a callback is queued, cleared by the loop when it takes the queue: lets the loop skip
    /// the lock, and a handle skip the wake-up while one is already on its way.
    pending: AtomicBool,
    waker: Waker,
}

struct Queue<H> {
    tasks: Vec<RemoteTask<H>>,
    /// Set when the loop is dropped; nothing is queued after that.
    closed: bool,
}

impl<H> Shared<H> {
    pub(crate) fn new(waker: Waker) -> Shared<H> {
        Shared {
            queue: Mutex::new(Queue {
                tasks: Vec::new(),
                closed: false,
            }),
            pending: AtomicBool::new(false),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<H>> {
        // Only pushes and swaps happen under the lock; a panic there leaves the queue consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether callbacks may be waiting in the queue.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves the queued callbacks into `buffer` (empty on entry), leaving `buffer`'s old memory to the
    /// queue so that steady-state hand-offs allocate nothing.
    pub(crate) fn take(&self, buffer: &mut Vec<RemoteTask<H>>) {
        if self.pending.swap(false, Ordering::AcqRel) {
            std::mem::swap(&mut self.lock().tasks, buffer);
        }
    }

    /// Marks the loop gone and drops what is still queued.
    pub(crate) fn close(&self) {
        let tasks = {
            let mut queue = self.lock();
            queue.closed = true;
            std::mem::take(&mut queue.tasks)
        };
        // Dropped outside the lock: a callback's captures may run arbitrary code when dropped.
        drop(tasks);
    }

    fn wake(&self) -> Result<(), Error> {
        self.waker.wake().map_err(|error| match error {
            selector::Error::SelectorClosed => Error::Closed,
            other => Error::Selector(other),
        })
    }
}

/// Reaches an [`EventLoop`] from any thread: queue a callback to run in the loop's thread, or stop the
/// loop. Cheap to clone; `Send + Sync` whatever the loop's handler type. Made by
/// [`EventLoop::handle`].
///
/// A handle does not keep [`run`](EventLoop::run) going: a loop with no sources, timers or callbacks
/// returns from `run` even while handles exist (use [`run_until`](EventLoop::run_until) to serve a
/// handle alone). The queue is unbounded: a thread that queues faster than the loop runs grows it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use iomux::event_loop::{EventLoop, Exit};
///
/// let mut event_loop = EventLoop::new()?;
/// let handle = event_loop.handle();
/// std::thread::spawn(move || {
///     handle.call_soon(|event_loop| event_loop.stop()).unwrap();
/// });
/// let exit = event_loop.run_until(Instant::now() + Duration::from_secs(10))?;
/// assert_eq!(exit, Exit::Stopped);
/// # Ok::<(), iomux::event_loop::Error>(())
/// ```
pub struct Handle<H = Callback> {
    shared: Arc<Shared<H>>,
}

impl<H> Handle<H> {
    pub(crate) fn new(shared: Arc<Shared<H>>) -> Handle<H> {
        Handle { shared }
    }

    /// Queues `callback` to run in the loop's thread, after the callbacks queued before it (from this
    /// or any thread), and wakes the loop.
    ///
    /// # Errors
    /// [`Error::Closed`] if the loop was dropped (the callback is dropped); [`Error::Selector`] if the
    /// wake-up cannot be written.
    pub fn call_soon<F>(&self, callback: F) -> Result<(), Error>
    where
        F: FnOnce(&mut EventLoop<H>) + Send + 'static,
    {
        {
            let mut queue = self.shared.lock();
            if queue.closed {
                return Err(Error::Closed);
            }
            queue.tasks.push(Box::new(callback));
        }
        // If `pending` was already set, the loop has not taken the queue since the handle that set it
        // woke it, so that wake-up covers this callback too.
        if self.shared.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.wake()
    }

    /// Asks the loop to stop: queues a callback that calls [`EventLoop::stop`], so the callbacks this
    /// thread queued before run first, and `run` or `run_until` returns
    /// [`Exit::Stopped`](super::Exit::Stopped) after that round.
    ///
    /// # Errors
    /// As [`call_soon`](Handle::call_soon).
    pub fn stop(&self) -> Result<(), Error> {
        self.call_soon(|event_loop| event_loop.stopping = true)
    }
}

impl<H> Clone for Handle<H> {
    fn clone(&self) -> Handle<H> {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> fmt::Debug for Handle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("closed", &self.shared.lock().closed)
            .field("pending", &self.shared.has_pending())
            .finish_non_exhaustive()
    }
}

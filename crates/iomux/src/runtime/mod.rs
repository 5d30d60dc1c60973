//! Layer 3, the coroutine runtime (the seeds' asyncio tasks and gevent `spawn` / `joinall` / `sleep`):
//! a single-threaded executor over a reactor on our own [`Selector`], with
//! timers, and a thread-per-core mode in [`workers`].
//!
//! One [`Runtime`] runs on one thread. Its tasks need not be `Send` (like tokio's `current_thread` or
//! smol's `LocalExecutor`); their wakers are `Send` and work from any thread. Sockets come from
//! [`crate::net`] and are registered with the runtime current when they are created.
//!
//! ```
//! use std::time::Duration;
//! use iomux::runtime::{Runtime, join_all, sleep, spawn};
//!
//! let runtime = Runtime::new()?;
//! let total = runtime.block_on(async {
//!     let tasks = (1..=3).map(|n| {
//!         spawn(async move {
//!             sleep(Duration::from_millis(n)).await;
//!             n
//!         })
//!     });
//!     join_all(tasks).await.into_iter().map(Result::unwrap).sum::<u64>()
//! });
//! assert_eq!(total, 6);
//! # Ok::<(), iomux::runtime::Error>(())
//! ```

mod error;
mod executor;
pub(crate) mod reactor;
mod task;
mod time;
pub mod workers;

use std::fmt;
use std::future::Future;
use std::rc::Rc;

pub use self::error::Error;
pub use self::task::{JoinHandle, join_all, yield_now};
pub use self::time::{Elapsed, Sleep, sleep, sleep_until, timeout};
pub use crate::selector::BackendKind;

use self::executor::Core;
use self::reactor::Reactor;
use crate::selector::Selector;

/// A single-threaded runtime: runs [`block_on`](Runtime::block_on)'s future and the tasks
/// [`spawn`]ed onto it, waiting in its selector when none is ready.
///
/// Dropping the runtime drops its unfinished tasks (their handles then report
/// [`Error::Cancelled`]). IO objects created inside it stay registered with its selector, which lives as
/// long as any of them, but nothing polls it once the runtime is gone.
pub struct Runtime {
    core: Rc<Core>,
}

/// Chooses a runtime's backend and event buffer before creating it.
///
/// ```
/// use iomux::runtime::{BackendKind, Runtime};
/// let runtime = Runtime::builder().backend(BackendKind::Poll).build()?;
/// assert_eq!(runtime.backend(), BackendKind::Poll);
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Builder {
    backend: BackendKind,
    event_capacity: usize,
}

impl Builder {
    /// The selector backend (default: [`BackendKind::best`], epoll on Linux).
    pub fn backend(mut self, backend: BackendKind) -> Builder {
        self.backend = backend;
        self
    }

    /// How many events one epoll wait may return (default 1024, at least 1).
    pub fn event_capacity(mut self, event_capacity: usize) -> Builder {
        self.event_capacity = event_capacity.max(1);
        self
    }

    /// Creates the runtime.
    ///
    /// # Errors
    /// [`Error::Selector`] if the selector or its waker cannot be created (backend unavailable, EMFILE).
    pub fn build(self) -> Result<Runtime, Error> {
        let mut selector = Selector::with_backend(self.backend)?;
        let selector_waker = selector.waker()?;
        let reactor = Reactor::new(selector, self.event_capacity);
        Ok(Runtime {
            core: Rc::new(Core::new(reactor, selector_waker)),
        })
    }
}

impl Runtime {
    /// A runtime over the best backend here (epoll on Linux).
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> Result<Runtime, Error> {
        Runtime::builder().build()
    }

    /// A runtime over the given backend.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn with_backend(backend: BackendKind) -> Result<Runtime, Error> {
        Runtime::builder().backend(backend).build()
    }

    /// A builder, to choose the backend and the event buffer.
    pub fn builder() -> Builder {
        Builder {
            backend: BackendKind::best(),
            event_capacity: 1024,
        }
    }

    /// The selector backend in use.
    pub fn backend(&self) -> BackendKind {
        self.core.reactor.backend()
    }

    /// Runs `future` on this thread until it finishes, running spawned tasks, IO and timers meanwhile,
    /// and returns its output. Tasks still unfinished stay in the runtime for the next `block_on`.
    ///
    /// A panic in `future` itself propagates to the caller; a panic in a spawned task is caught and
    /// reported through its [`JoinHandle`].
    ///
    /// # Panics
    /// If called inside another `block_on` on this thread (it would block the outer runtime's tasks),
    /// and if the selector's wait fails for a reason other than a transient lack of memory, which
    /// would mean a bug: the runtime unregisters every fd before it is closed.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.core.block_on(future)
    }

    /// Spawns a task onto this runtime; it starts running at the next `block_on`, or at once if one is
    /// running.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(future)
    }

    /// The number of spawned tasks that have not finished.
    pub fn task_count(&self) -> usize {
        self.core.task_count()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("backend", &self.backend())
            .field("tasks", &self.task_count())
            .finish()
    }
}

/// Runs `future` to completion on a new runtime over the best backend.
///
/// # Errors
/// As [`Runtime::new`]; the future's own output is in the `Ok`.
///
/// # Panics
/// As [`Runtime::block_on`].
///
/// ```
/// assert_eq!(iomux::runtime::block_on(async { 1 + 1 })?, 2);
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Error> {
    Ok(Runtime::new()?.block_on(future))
}

/// Spawns a task onto the runtime running on this thread and returns its handle.
///
/// # Panics
/// Outside [`Runtime::block_on`]; use [`Runtime::spawn`] there, or [`try_spawn`].
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    try_spawn(future).expect("spawn is called inside Runtime::block_on")
}

/// Spawns a task onto the runtime running on this thread, if there is one.
///
/// # Errors
/// [`Error::NoRuntime`] outside [`Runtime::block_on`].
pub fn try_spawn<F>(future: F) -> Result<JoinHandle<F::Output>, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let core = executor::current().ok_or(Error::NoRuntime { operation: "spawn" })?;
    Ok(core.spawn(future))
}

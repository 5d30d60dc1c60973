//! Tasks as their spawner sees them: [`JoinHandle`] (await the result, abort), [`join_all`] and
//! [`yield_now`]. Layer 3, the coroutine runtime.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::Error;
use super::executor::Header;

/// What the executor needs of a task's join state without knowing its output type.
pub(crate) trait Completion {
    /// The task's id.
    fn id(&self) -> u64;
    /// Ends the task with an error (cancelled, panicked), unless it already has a result.
    fn fail(&self, error: Error);
}

enum Stage<T> {
    Running,
    Finished(Result<T, Error>),
    /// The result was handed to the `JoinHandle`.
    Taken,
}

/// The result slot a task and its [`JoinHandle`] share.
pub(crate) struct JoinState<T> {
    id: u64,
    stage: RefCell<Stage<T>>,
    /// The task awaiting the handle.
    waiter: Cell<Option<Waker>>,
}

impl<T> JoinState<T> {
    pub(crate) fn new(id: u64) -> JoinState<T> {
        JoinState {
            id,
            stage: RefCell::new(Stage::Running),
            waiter: Cell::new(None),
        }
    }

    /// Records the task's output and wakes the task awaiting its handle.
    pub(crate) fn complete(&self, output: T) {
        self.finish(Ok(output));
    }

    fn finish(&self, result: Result<T, Error>) {
        {
            let mut stage = self.stage.borrow_mut();
            if !matches!(*stage, Stage::Running) {
                return;
            }
            *stage = Stage::Finished(result);
        }
        if let Some(waiter) = self.waiter.take() {
            waiter.wake();
        }
    }
}

impl<T> Completion for JoinState<T> {
    fn id(&self) -> u64 {
        self.id
    }

    fn fail(&self, error: Error) {
        self.finish(Err(error));
    }
}

/// A handle to a spawned task: await it for the task's output, or [`abort`](JoinHandle::abort) it.
///
/// Awaiting gives `Ok(output)`, or [`Error::Cancelled`] if the task was aborted (or dropped with its
/// runtime) first, or [`Error::Panicked`] if it panicked — the panic is caught and the runtime and its
/// other tasks go on (unless the crate is built with `panic = "abort"`). Dropping the handle detaches
/// the task: it keeps running.
///
/// ```
/// use iomux::runtime::{Error, Runtime, spawn};
///
/// let runtime = Runtime::new()?;
/// runtime.block_on(async {
///     assert_eq!(spawn(async { 6 * 7 }).await?, 42);
///     let failing = spawn(async { panic!("boom") });
///     assert!(matches!(failing.await, Err(Error::Panicked { .. })));
///     let stuck = spawn(std::future::pending::<()>());
///     stuck.abort();
///     assert!(matches!(stuck.await, Err(Error::Cancelled { .. })));
///     Ok::<(), Error>(())
/// })?;
/// # Ok::<(), Error>(())
/// ```
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    header: Arc<Header>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Rc<JoinState<T>>, header: Arc<Header>) -> JoinHandle<T> {
        JoinHandle { state, header }
    }

    /// The task's id, unique within its runtime; errors about the task name it.
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// Whether the task has finished (with an output, a panic or a cancellation).
    pub fn is_finished(&self) -> bool {
        !matches!(*self.state.stage.borrow(), Stage::Running)
    }

    /// Cancels the task: it is queued, and when the runtime gets to it its future is dropped instead
    /// of polled; awaiting the handle then gives [`Error::Cancelled`]. A task that finishes before
    /// that (or already has) keeps its result.
    pub fn abort(&self) {
        if self.is_finished() {
            return;
        }
        self.header.abort();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Error>;

    /// # Panics
    /// If polled again after it returned the result.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.state.stage.borrow_mut();
        match std::mem::replace(&mut *stage, Stage::Taken) {
            Stage::Finished(result) => Poll::Ready(result),
            Stage::Running => {
                *stage = Stage::Running;
                let waiter = self.state.waiter.take();
                match waiter {
                    Some(waiter) if waiter.will_wake(cx.waker()) => {
                        self.state.waiter.set(Some(waiter));
                    }
                    _ => self.state.waiter.set(Some(cx.waker().clone())),
                }
                Poll::Pending
            }
            Stage::Taken => panic!("JoinHandle polled again after it returned the task's result"),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.state.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Awaits every future and returns their outputs in the order given (gevent's `joinall`). The futures
/// run concurrently within the awaiting task; give it [`JoinHandle`]s to wait for spawned tasks.
///
/// Each wake polls the futures that have not finished, so this suits tens to thousands of futures
/// whose polls are cheap, such as join handles.
///
/// ```
/// use iomux::runtime::{Runtime, join_all, spawn};
///
/// let runtime = Runtime::new()?;
/// let outputs = runtime.block_on(join_all((0..4).map(|n| spawn(async move { n * n }))));
/// let squares: Vec<u32> = outputs.into_iter().map(Result::unwrap).collect();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
pub async fn join_all<I>(futures: I) -> Vec<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future,
{
    let mut pending: Vec<Option<Pin<Box<I::Item>>>> = futures
        .into_iter()
        .map(|future| Some(Box::pin(future)))
        .collect();
    let mut outputs: Vec<Option<<I::Item as Future>::Output>> =
        pending.iter().map(|_| None).collect();
    let mut left = pending.len();
    poll_fn(|cx| {
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *output = Some(value);
                *slot = None;
                left -= 1;
            }
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished before join_all returned"))
        .collect()
}

/// Lets the other ready tasks run before this one goes on: it is queued behind every task that is
/// ready now.
///
/// ```
/// use iomux::runtime::{Runtime, yield_now};
/// Runtime::new()?.block_on(async { yield_now().await });
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

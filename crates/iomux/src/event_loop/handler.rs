//! What the loop calls when a source is ready: the [`Handler`] trait (static dispatch, one type for
//! every source of a loop), its [`TimeoutHandler`] extension for source timeouts, and [`Callback`], the
//! boxed-closure handler behind the seeds' `sel.register(sock, EVENT_READ, accept)`. Layer 2, the
//! callback event loop.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::{EventLoop, Timer};
use crate::selector::Ready;

/// A registered source together with the code that handles its readiness: it owns its fd (so the loop
/// can never watch a closed one) and whatever per-connection state it needs.
///
/// One loop has one handler type, so dispatch is a direct (inlinable) call: a server usually makes it
/// an enum of its kinds of source (listener, connection…). [`Callback`] is the handler for loops that
/// take closures instead. While its `ready` runs, a handler is moved out of the loop's table, so keep
/// it small (box large buffers) — the move is then a few words.
pub trait Handler: AsFd + Sized {
    /// Called when the source is ready for what it was registered for (or has an error or hang-up,
    /// which is always reported). The handler may register, modify or unregister any source (itself
    /// included: unregistering itself drops it as soon as this call returns), schedule timers and stop
    /// the loop through `event_loop`.
    fn ready(&mut self, event_loop: &mut EventLoop<Self>, ready: Ready);
}

/// A [`Handler`] that also receives its source's timeouts, scheduled with
/// [`EventLoop::timeout_after`] or [`EventLoop::timeout_at`]: a per-connection header or keep-alive
/// timeout that costs no allocation and is dropped with the source.
pub trait TimeoutHandler: Handler {
    /// Called when a timeout set for this source's registration is due; `timer` is the handle
    /// `timeout_after` returned.
    fn timeout(&mut self, event_loop: &mut EventLoop<Self>, timer: Timer);
}

/// The boxed-closure handler: a source and an `FnMut(&mut EventLoop, &mut S, Ready)` called with it
/// (the seeds' `callback(key.fileobj, mask)`), behind one allocation per registration and one
/// indirect call per event. [`EventLoop::register`] builds it for you.
pub struct Callback(Box<dyn Bound>);

/// A source and its closure, type-erased.
trait Bound {
    fn call(&mut self, event_loop: &mut EventLoop, ready: Ready);
    fn fd(&self) -> BorrowedFd<'_>;
}

/// The concrete pair behind a [`Callback`].
struct With<S, F> {
    source: S,
    callback: F,
}

impl<S, F> Bound for With<S, F>
where
    S: AsFd,
    F: FnMut(&mut EventLoop, &mut S, Ready),
{
    fn call(&mut self, event_loop: &mut EventLoop, ready: Ready) {
        (self.callback)(event_loop, &mut self.source, ready);
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.source.as_fd()
    }
}

impl Callback {
    /// Binds `callback` to `source`: the loop calls it with the source whenever it is ready, and
    /// drops both when the source is unregistered.
    pub fn new<S, F>(source: S, callback: F) -> Callback
    where
        S: AsFd + 'static,
        F: FnMut(&mut EventLoop, &mut S, Ready) + 'static,
    {
        Callback(Box::new(With { source, callback }))
    }
}

impl Handler for Callback {
    #[inline]
    fn ready(&mut self, event_loop: &mut EventLoop, ready: Ready) {
        self.0.call(event_loop, ready);
    }
}

impl AsFd for Callback {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.fd()
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("fd", &self.0.fd().as_raw_fd())
            .finish_non_exhaustive()
    }
}

//! Layer 2, the callback event loop (the seeds' `sel.register(sock, EVENT_READ, accept)` model, and
//! asyncio's loop): [`EventLoop`] runs callbacks when sources are ready, when timers are due, when
//! signals arrive and when other callbacks or threads ask, over any [`Selector`] backend.
//!
//! ```
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::os::fd::AsRawFd;
//! use iomux::event_loop::{EventLoop, Exit};
//! use iomux::selector::Interest;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let address = listener.local_addr()?;
//!
//! let mut event_loop = EventLoop::new()?;
//! // The loop owns the listener and calls `accept` with it, as the seeds' `key.data(key.fileobj, mask)`.
//! event_loop.register(listener, Interest::READ, |event_loop, listener, _ready| {
//!     while let Ok((stream, _)) = listener.accept() {
//!         stream.set_nonblocking(true).unwrap();
//!         event_loop
//!             .register(stream, Interest::READ, |event_loop, stream, _ready| {
//!                 let mut buffer = [0; 1024];
//!                 match stream.read(&mut buffer) {
//!                     Ok(0) | Err(_) => {
//!                         // Unregistering drops the callback and, with it, closes the stream.
//!                         let _ = event_loop.unregister(stream.as_raw_fd());
//!                         event_loop.stop(); // one client is enough for this example
//!                     }
//!                     Ok(n) => stream.write_all(&buffer[..n]).unwrap(), // small: fits the send buffer
//!                 }
//!             })
//!             .unwrap();
//!     }
//! })?;
//!
//! let client = std::thread::spawn(move || {
//!     let mut stream = TcpStream::connect(address)?;
//!     stream.write_all(b"hello")?;
//!     let mut reply = [0; 5];
//!     stream.read_exact(&mut reply)?;
//!     assert_eq!(&reply, b"hello");
//!     Ok::<(), std::io::Error>(())
//! });
//! assert_eq!(event_loop.run()?, Exit::Stopped);
//! client.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How callbacks are stored and called
//! Each registration's [`Handler`] lives in the selector's fd-indexed table, as the
//! [`Key`](crate::selector::Key)'s data: an
//! event costs one array lookup. While it runs, the handler is moved out of the table and given
//! `&mut EventLoop`, so it can register, modify and unregister any source (itself included), schedule
//! timers and stop the loop without `Rc<RefCell<…>>`; afterwards it is moved back unless its own
//! registration went away meanwhile (a generation number tells a new registration of the same fd
//! number from the old one). libuv and asyncio also keep a callback per registration but call it
//! through a pointer; mio leaves the table and the dispatch to its user; tokio keeps a slab of
//! readiness cells and wakes tasks. Here the handler type is a parameter of the loop: a server makes it
//! an enum of its kinds of source and gets direct, inlinable calls and no allocation per
//! registration; [`Callback`] (the default) boxes a closure with its source for the seeds' style, at
//! one allocation per registration and one indirect call per event. Either way the loop owns the
//! source, so a source is always unregistered before it is closed.
//!
//! # A round
//! [`run_once`](EventLoop::run_once) is one round, and [`run`](EventLoop::run) and
//! [`run_until`](EventLoop::run_until) repeat it:
//! 1. wait: not at all if callbacks are queued or a stop was asked for, else until the nearest timer
//!    (rounded up by the selector to its resolution, so a near timer never becomes a busy loop), a
//!    ready source, a signal or a [`Handle`];
//! 2. call the handlers of the ready sources, and the callbacks of arrived signals;
//! 3. call the timers due by now, earliest first (equal deadlines in scheduling order); a timer never
//!    fires before its deadline;
//! 4. call the [`call_soon`](EventLoop::call_soon) callbacks queued before this step, first in first
//!    out; the ones they queue wait for the next round.
//!
//! In steady state a round allocates nothing: the event buffer, the timer heap and the queues keep
//! their memory. Timers are an indexed binary heap: scheduling, cancelling and re-setting one is
//! O(log n), and a cancelled timer is gone at once (see `timers.rs`).
//!
//! # Ending a run
//! `run` returns [`Exit::Stopped`] after the round in which [`stop`](EventLoop::stop) (or
//! [`Handle::stop`]) was called, or [`Exit::Idle`] when nothing is left that could call back: no
//! registered sources, no timers, no queued callbacks. Signal callbacks and handles do not count, so a
//! server that unregisters its listener on `SIGTERM` ends by itself once its last connection closes.
//! `run_until(deadline)` returns `Stopped`, or [`Exit::Deadline`] once the deadline has passed (never
//! earlier), and does not end when idle. A stop asked for while the loop is not running makes the next
//! run end after one round that does not wait.
//!
//! # Signals
//! [`on_signal`](EventLoop::on_signal) turns a Unix signal into an ordinary callback; the signal
//! handler runs no user code. Per signal a loop listens to, `signal-hook` installs two
//! async-signal-safe actions: one sets that signal's flag ([`signal_hook::flag::register`]), the next
//! sends a byte on the loop's socket pair ([`signal_hook::low_level::pipe::register`]), in that order.
//! The pair's read end is registered with the loop's selector like a source, so the wait ends, the
//! loop drains the socket and calls the callback of each signal whose flag it finds set. Deliveries
//! that arrive before the loop looks coalesce into one call.
//!
//! Removing a signal, or dropping the loop, unregisters both actions, and a later loop in the same
//! process can listen again. `signal-hook` never uninstalls its process-wide handler, which would
//! leave a signal nobody listens to any more ignored; so when the first loop listens to a signal whose
//! disposition is still the default, it also registers a conditional default action
//! ([`signal_hook::flag::register_conditional_default`]), armed whenever no loop listens: after the
//! last loop lets go of `SIGTERM`, `SIGTERM` terminates the process again. A signal that was ignored
//! (a background job's `SIGINT`) or had a handler of its own is left as it was. (The flip side: if
//! other code in the process registers its own `signal-hook` action for a signal after a loop let go
//! of it, the restored default still terminates the process on that signal.)
//!
//! # Closing, errors, panics and `SIGPIPE`
//! Close a source by unregistering it (the handler is dropped, and with it the source). If a source's
//! fd is closed behind the loop's back, select and poll report it [`Ready::INVALID`]; the loop calls
//! the handler once with that and then unregisters it, so it cannot spin. A handler that panics
//! unwinds out of `run`; its registration is removed and the loop stays usable. Writing to a peer that
//! has gone must not kill the process: every loop calls [`ignore_sigpipe`] when built.

mod error;
mod handle;
mod handler;
mod signals;
pub(crate) mod timers;

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::error::Error;
pub use self::handle::Handle;
pub use self::handler::{Callback, Handler, TimeoutHandler};
pub use self::timers::Timer;
pub use crate::selector::{BackendKind, Interest, Ready, Trigger, WakerKind};
pub use crate::sys::signal::ignore_sigpipe;

use self::handle::{RemoteTask, Shared};
use self::signals::Signals;
use self::timers::Timers;
use crate::selector::{Events, Selector};

/// A callback queued in the loop's own thread.
type Task<H> = Box<dyn FnOnce(&mut EventLoop<H>)>;

/// What a due timer does.
enum TimerAction<H> {
    /// Call a closure ([`EventLoop::call_later`], [`EventLoop::call_at`]).
    Call(Task<H>),
    /// Deliver a timeout to a source's handler ([`EventLoop::timeout_after`]), if the registration it
    /// was set for still exists.
    Source {
        fd: RawFd,
        generation: u64,
        deliver: fn(&mut H, &mut EventLoop<H>, Timer),
    },
}

/// One registration's entry in the selector's table.
pub(crate) struct Source<H> {
    /// Unique per registration (0 for the loop's own signal socket), so a handler is never put back
    /// into, and an old timeout never delivered to, a later registration of the same fd number.
    generation: u64,
    /// `None` while the handler runs (and for the signal socket).
    handler: Option<H>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// [`EventLoop::stop`] or [`Handle::stop`] was called.
    Stopped,
    /// Nothing was left that could call back: no sources, no timers, no queued callbacks
    /// ([`EventLoop::run`] only).
    Idle,
    /// The deadline passed ([`EventLoop::run_until`] only).
    Deadline,
}

/// Chooses an event loop's backend and buffers before creating it.
///
/// ```
/// use iomux::event_loop::{BackendKind, Builder, EventLoop};
/// let event_loop: EventLoop = Builder::new().backend(BackendKind::Poll).events_capacity(256).build()?;
/// assert_eq!(event_loop.backend(), BackendKind::Poll);
/// # Ok::<(), iomux::event_loop::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    backend: BackendKind,
    waker: WakerKind,
    events_capacity: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: the best backend, the best waker, up to 1024 events per wait.
    pub fn new() -> Builder {
        Builder {
            backend: BackendKind::best(),
            waker: WakerKind::Auto,
            events_capacity: 1024,
        }
    }

    /// The selector backend (default: [`BackendKind::best`]).
    pub fn backend(mut self, backend: BackendKind) -> Builder {
        self.backend = backend;
        self
    }

    /// The kernel object behind the loop's [`Handle`] wake-ups (default: [`WakerKind::Auto`]).
    pub fn waker(mut self, waker: WakerKind) -> Builder {
        self.waker = waker;
        self
    }

    /// How many events one epoll wait may return (default 1024, at least 1).
    pub fn events_capacity(mut self, events_capacity: usize) -> Builder {
        self.events_capacity = events_capacity.max(1);
        self
    }

    /// Creates the loop, for any handler type (`EventLoop` alone means `EventLoop<Callback>`).
    ///
    /// # Errors
    /// [`Error::Selector`] if the backend is unavailable or the kernel refuses to create it or its
    /// waker (EMFILE); [`Error::Signal`] if `SIGPIPE` cannot be ignored.
    pub fn build<H: Handler>(self) -> Result<EventLoop<H>, Error> {
        ignore_sigpipe().map_err(|source| Error::Signal {
            signal: libc::SIGPIPE,
            source,
        })?;
        let mut selector = Selector::builder()
            .backend(self.backend)
            .waker(self.waker)
            .build()?;
        let waker = selector.waker()?;
        Ok(EventLoop {
            selector,
            events: Some(Events::with_capacity(self.events_capacity)),
            events_capacity: self.events_capacity,
            timers: Timers::new(),
            soon: VecDeque::new(),
            remote: Vec::new(),
            shared: Arc::new(Shared::new(waker)),
            signals: None,
            signal_fd: None,
            sources: 0,
            generation: 0,
            stopping: false,
            running: false,
            current: None,
        })
    }
}

/// A callback event loop over one [`Selector`]: sources with handlers, timers, `call_soon`, signals
/// and a cross-thread [`Handle`]. See the [module docs](self) for the model, a round and how runs end.
///
/// `H` is the handler type of every registered source: [`Callback`] (closures, the default) or your
/// own [`Handler`]. A loop is not `Send`: build it in the thread that runs it (one loop per thread is
/// the thread-per-core model).
pub struct EventLoop<H = Callback> {
    selector: Selector<Source<H>>,
    /// The buffer waits fill; `None` only while a round dispatches it.
    events: Option<Events>,
    events_capacity: usize,
    timers: Timers<TimerAction<H>>,
    /// `call_soon` callbacks, oldest first.
    soon: VecDeque<Task<H>>,
    /// An empty buffer traded with the handles' queue, to take it without allocating.
    remote: Vec<RemoteTask<H>>,
    shared: Arc<Shared<H>>,
    /// Created by the first `on_signal`.
    signals: Option<Signals<H>>,
    /// The signal socket's fd, registered with the selector but not a user source.
    signal_fd: Option<RawFd>,
    /// The number of user registrations (the selector also holds the signal socket).
    sources: usize,
    /// The last generation given to a registration or signal callback.
    generation: u64,
    /// [`EventLoop::stop`] was called and no run has returned for it yet.
    stopping: bool,
    /// A run is in progress (a callback calling `run` again is refused).
    running: bool,
    /// The registration whose handler runs now, to unregister it if it panics.
    current: Option<(RawFd, u64)>,
}

impl EventLoop<Callback> {
    /// A loop for closures over the best backend (epoll on Linux).
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> Result<EventLoop, Error> {
        Builder::new().build()
    }

    /// A loop for closures over the given backend.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn with_backend(backend: BackendKind) -> Result<EventLoop, Error> {
        Builder::new().backend(backend).build()
    }

    /// A [`Builder`], to choose the backend and buffers (and, with `build::<H>()`, the handler type).
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Registers `source` (level-triggered) and calls `callback` with it whenever it is ready for
    /// `interest`; the loop owns both until [`unregister`](EventLoop::unregister) drops them. Returns
    /// the source's fd, the key for `modify` and `unregister`. Make the source non-blocking.
    ///
    /// # Errors
    /// [`Error::Selector`]: already registered, an fd select cannot watch (≥ 1024), or a kernel
    /// refusal. On error the source is dropped (closed).
    pub fn register<S, F>(
        &mut self,
        source: S,
        interest: Interest,
        callback: F,
    ) -> Result<RawFd, Error>
    where
        S: AsFd + 'static,
        F: FnMut(&mut EventLoop, &mut S, Ready) + 'static,
    {
        self.register_handler(Callback::new(source, callback), interest)
    }

    /// As [`register`](EventLoop::register), with a trigger mode.
    ///
    /// # Errors
    /// As [`register`](EventLoop::register), and edge triggering on select or poll.
    pub fn register_with<S, F>(
        &mut self,
        source: S,
        interest: Interest,
        trigger: Trigger,
        callback: F,
    ) -> Result<RawFd, Error>
    where
        S: AsFd + 'static,
        F: FnMut(&mut EventLoop, &mut S, Ready) + 'static,
    {
        self.register_handler_with(Callback::new(source, callback), interest, trigger)
    }
}

impl<H: Handler> EventLoop<H> {
    /// Registers `handler`'s fd (level-triggered) and calls [`Handler::ready`] whenever it is ready
    /// for `interest`; the loop owns the handler until [`unregister`](EventLoop::unregister). Returns
    /// the fd.
    ///
    /// # Errors
    /// As [`register`](EventLoop::register); on error the handler is dropped.
    pub fn register_handler(&mut self, handler: H, interest: Interest) -> Result<RawFd, Error> {
        self.register_handler_with(handler, interest, Trigger::Level)
    }

    /// As [`register_handler`](EventLoop::register_handler), with a trigger mode.
    ///
    /// # Errors
    /// As [`register_with`](EventLoop::register_with); on error the handler is dropped.
    pub fn register_handler_with(
        &mut self,
        handler: H,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<RawFd, Error> {
        let fd = handler.as_fd().as_raw_fd();
        let generation = self.generation + 1;
        let placeholder = Source {
            generation,
            handler: None,
        };
        self.selector
            .register_with(handler.as_fd(), interest, trigger, placeholder)?;
        self.generation = generation;
        self.sources += 1;
        self.selector
            .get_mut(fd)
            .expect("registered just above")
            .data_mut()
            .handler = Some(handler);
        Ok(fd)
    }

    /// Changes what `fd` is watched for, keeping its handler and trigger mode; re-arms a oneshot
    /// registration. Callable from the source's own handler (e.g. to add write interest while output
    /// is pending).
    ///
    /// # Errors
    /// [`Error::Selector`]: not registered, or a kernel refusal (the registration is then unchanged).
    pub fn modify(&mut self, fd: RawFd, interest: Interest) -> Result<(), Error> {
        self.check_user_fd(fd)?;
        Ok(self.selector.modify_interest(fd, interest)?)
    }

    /// Stops watching `fd` and returns its handler, or drops it: called from the source's own handler,
    /// it returns `None` and the handler is dropped (closing its source) as soon as that call returns.
    ///
    /// # Errors
    /// [`Error::Selector`] if `fd` is not registered, or the kernel refuses (the registration stays).
    pub fn unregister(&mut self, fd: RawFd) -> Result<Option<H>, Error> {
        self.check_user_fd(fd)?;
        let source = self.selector.unregister(fd)?;
        self.sources -= 1;
        Ok(source.handler)
    }

    /// Whether `fd` is registered as a source.
    pub fn is_registered(&self, fd: RawFd) -> bool {
        Some(fd) != self.signal_fd && self.selector.get(fd).is_some()
    }

    /// The handler of `fd`, to reach another source's state; `None` if `fd` is not registered or its
    /// handler is the one running now.
    pub fn handler_mut(&mut self, fd: RawFd) -> Option<&mut H> {
        self.selector.get_mut(fd)?.data_mut().handler.as_mut()
    }

    /// The number of registered sources.
    pub fn sources_len(&self) -> usize {
        self.sources
    }

    /// Queues `callback` to run in this loop's next `call_soon` step, after those queued before it.
    pub fn call_soon<F>(&mut self, callback: F)
    where
        F: FnOnce(&mut EventLoop<H>) + 'static,
    {
        self.soon.push_back(Box::new(callback));
    }

    /// The number of `call_soon` callbacks waiting (queued from other threads not included until the
    /// loop takes them).
    pub fn soon_len(&self) -> usize {
        self.soon.len()
    }

    /// Calls `callback` once `delay` has passed (never earlier); returns a handle to
    /// [`cancel`](EventLoop::cancel) or [`reset`](EventLoop::reset) it. A delay too large to represent
    /// is clamped to about 30 years.
    pub fn call_later<F>(&mut self, delay: Duration, callback: F) -> Timer
    where
        F: FnOnce(&mut EventLoop<H>) + 'static,
    {
        self.call_at(deadline_after(delay), callback)
    }

    /// Calls `callback` once `deadline` has passed (never earlier; at once, in the next timer step, for
    /// a deadline in the past).
    pub fn call_at<F>(&mut self, deadline: Instant, callback: F) -> Timer
    where
        F: FnOnce(&mut EventLoop<H>) + 'static,
    {
        self.timers
            .insert(deadline, TimerAction::Call(Box::new(callback)))
    }

    /// Cancels `timer`; returns whether it was still pending. O(log n), and its memory is reusable at
    /// once.
    pub fn cancel(&mut self, timer: Timer) -> bool {
        self.timers.cancel(timer).is_some()
    }

    /// Moves a pending `timer` to fire `delay` from now, keeping its callback and handle (no
    /// allocation: the way to push back a keep-alive timeout). Returns `false` if it already fired or
    /// was cancelled.
    pub fn reset(&mut self, timer: Timer, delay: Duration) -> bool {
        self.timers.reset(timer, deadline_after(delay))
    }

    /// Moves a pending `timer` to fire at `deadline`; as [`reset`](EventLoop::reset).
    pub fn reset_at(&mut self, timer: Timer, deadline: Instant) -> bool {
        self.timers.reset(timer, deadline)
    }

    /// When `timer` is due, if it is still pending.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.timers.deadline(timer)
    }

    /// The number of pending timers. Fired and cancelled timers are removed at once, so this is also
    /// what the timer queue holds.
    pub fn timers_len(&self) -> usize {
        self.timers.len()
    }

    /// A handle for other threads, to queue callbacks and stop the loop.
    pub fn handle(&self) -> Handle<H> {
        Handle::new(Arc::clone(&self.shared))
    }

    /// Makes the current (or next) `run` or `run_until` return [`Exit::Stopped`] after this round.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether nothing is left that could call back: no sources, timers or queued callbacks.
    pub fn is_idle(&self) -> bool {
        self.sources == 0
            && self.timers.is_empty()
            && self.soon.is_empty()
            && !self.shared.has_pending()
    }

    /// The selector backend in use.
    pub fn backend(&self) -> BackendKind {
        self.selector.backend()
    }

    /// Runs rounds until [`stop`](EventLoop::stop) or until idle (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] from inside a callback; [`Error::Selector`] if a wait fails.
    pub fn run(&mut self) -> Result<Exit, Error> {
        self.guarded(|event_loop| {
            loop {
                if !event_loop.is_stop_requested() && event_loop.is_idle() {
                    return Ok(Exit::Idle);
                }
                event_loop.round(None)?;
                if event_loop.take_stop() {
                    return Ok(Exit::Stopped);
                }
            }
        })
    }

    /// Runs rounds until [`stop`](EventLoop::stop) or until `deadline` has passed; keeps waiting when
    /// idle, so signals and [`Handle`]s are served until then.
    ///
    /// # Errors
    /// As [`run`](EventLoop::run).
    pub fn run_until(&mut self, deadline: Instant) -> Result<Exit, Error> {
        self.guarded(|event_loop| {
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Exit::Deadline);
                }
                event_loop.round(Some(deadline - now))?;
                if event_loop.take_stop() {
                    return Ok(Exit::Stopped);
                }
            }
        })
    }

    /// Runs one round, waiting at most `timeout` (`None`: as long as needed) for something to do;
    /// returns how many callbacks it called (handlers, timers, signals and `call_soon` callbacks).
    /// Does not consume a stop request.
    ///
    /// # Errors
    /// As [`run`](EventLoop::run).
    pub fn run_once(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.guarded(|event_loop| event_loop.round(timeout))
    }

    /// Runs `body` as the one active run, keeping the loop usable if a callback panics.
    fn guarded<R>(&mut self, body: impl FnOnce(&mut Self) -> Result<R, Error>) -> Result<R, Error> {
        if self.running {
            return Err(Error::AlreadyRunning);
        }
        self.running = true;
        let result = panic::catch_unwind(AssertUnwindSafe(|| body(self)));
        self.running = false;
        match result {
            Ok(result) => result,
            Err(payload) => {
                self.recover();
                panic::resume_unwind(payload)
            }
        }
    }

    /// Cleans up after a callback panicked: the handler that was running is gone (dropped while
    /// unwinding, closing its source), so its registration must go too, or select and poll would
    /// report the closed fd forever.
    fn recover(&mut self) {
        if let Some((fd, generation)) = self.current.take()
            && self
                .selector
                .get(fd)
                .is_some_and(|key| key.data().generation == generation)
        {
            let _ = self.unregister(fd);
        }
        if let Some(signals) = self.signals.as_mut() {
            signals.forget_running();
        }
    }

    fn is_stop_requested(&self) -> bool {
        self.stopping
    }

    fn take_stop(&mut self) -> bool {
        std::mem::take(&mut self.stopping)
    }

    /// One round; see the module docs.
    fn round(&mut self, max_wait: Option<Duration>) -> Result<usize, Error> {
        self.take_remote();
        let timeout = if !self.soon.is_empty() || self.is_stop_requested() {
            Some(Duration::ZERO)
        } else {
            // The clock is read only when a timer is pending.
            let until_timer = self
                .timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            match (max_wait, until_timer) {
                (Some(wait), Some(timer)) => Some(wait.min(timer)),
                (wait, None) => wait,
                (None, timer) => timer,
            }
        };
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(self.events_capacity));
        let waited = self.selector.select(&mut events, timeout);
        let mut count = 0;
        if waited.is_ok() {
            count += self.dispatch_events(&events);
        }
        self.events = Some(events);
        waited?;
        count += self.fire_timers();
        self.take_remote();
        count += self.run_soon();
        Ok(count)
    }

    /// Moves callbacks queued by handles into the `call_soon` queue. Called twice a round: the check
    /// is inlined, the move is not.
    #[inline]
    fn take_remote(&mut self) {
        if self.shared.has_pending() {
            self.move_remote();
        }
    }

    #[cold]
    fn move_remote(&mut self) {
        self.shared.take(&mut self.remote);
        for task in self.remote.drain(..) {
            self.soon.push_back(task);
        }
    }

    fn dispatch_events(&mut self, events: &Events) -> usize {
        // Registrations made while this batch is dispatched have a larger generation: an event of the
        // batch is about the fd they replaced, not about them.
        let floor = self.generation + 1;
        let mut count = 0;
        for event in events {
            let fd = event.fd();
            if Some(fd) == self.signal_fd {
                count += self.dispatch_signals();
                continue;
            }
            let ready = event.ready();
            let Some((mut handler, generation)) =
                self.take_handler(fd, |generation| generation < floor)
            else {
                continue;
            };
            handler.ready(self, ready);
            count += 1;
            self.put_back(fd, generation, handler, ready.is_invalid());
        }
        count
    }

    /// Takes the handler of `fd` out of the table if its generation passes `accept`.
    fn take_handler(&mut self, fd: RawFd, accept: impl Fn(u64) -> bool) -> Option<(H, u64)> {
        let source = self.selector.get_mut(fd)?.data_mut();
        if !accept(source.generation) {
            return None;
        }
        let handler = source.handler.take()?;
        self.current = Some((fd, source.generation));
        Some((handler, source.generation))
    }

    /// Puts a handler back after it ran, unless its registration is gone; with `closed` (its fd was
    /// reported closed) the registration is removed and the handler dropped.
    fn put_back(&mut self, fd: RawFd, generation: u64, handler: H, closed: bool) {
        self.current = None;
        let Some(key) = self.selector.get_mut(fd) else {
            return; // unregistered by its own callback: dropped here, after the call
        };
        let source = key.data_mut();
        if source.generation != generation || source.handler.is_some() {
            return;
        }
        if !closed {
            source.handler = Some(handler);
            return;
        }
        // Unregistered first, so the handler (and its source) is dropped only afterwards.
        let _ = self.unregister(fd);
    }

    fn fire_timers(&mut self) -> usize {
        if self.timers.is_empty() {
            return 0;
        }
        let now = Instant::now();
        // Timers scheduled by the callbacks below wait for the next round, so a callback that
        // re-schedules itself at zero delay cannot hold the loop in this step.
        let limit = self.timers.next_seq();
        let mut count = 0;
        while let Some((timer, action)) = self.timers.pop_due(now, limit) {
            match action {
                TimerAction::Call(callback) => {
                    callback(self);
                    count += 1;
                }
                TimerAction::Source {
                    fd,
                    generation,
                    deliver,
                } => {
                    let Some((mut handler, generation)) =
                        self.take_handler(fd, |current| current == generation)
                    else {
                        continue; // the registration it was set for is gone
                    };
                    deliver(&mut handler, self, timer);
                    count += 1;
                    self.put_back(fd, generation, handler, false);
                }
            }
        }
        count
    }

    fn run_soon(&mut self) -> usize {
        let queued = self.soon.len();
        for _ in 0..queued {
            let Some(callback) = self.soon.pop_front() else {
                break;
            };
            callback(self);
        }
        queued
    }

    fn check_user_fd(&self, fd: RawFd) -> Result<(), Error> {
        if Some(fd) == self.signal_fd {
            return Err(crate::selector::Error::NotRegistered { fd }.into());
        }
        Ok(())
    }
}

impl<H: TimeoutHandler> EventLoop<H> {
    /// Calls [`TimeoutHandler::timeout`] on `fd`'s handler once `delay` has passed (never earlier),
    /// unless `fd` was unregistered by then. No allocation, and the handler gets `&mut self` with the
    /// loop: a per-connection header or keep-alive timeout. Re-set it with
    /// [`reset`](EventLoop::reset); cancel it when the connection closes, or it stays queued (and is
    /// then dropped) until its deadline.
    ///
    /// # Errors
    /// [`Error::Selector`] if `fd` is not registered.
    pub fn timeout_after(&mut self, fd: RawFd, delay: Duration) -> Result<Timer, Error> {
        self.timeout_at(fd, deadline_after(delay))
    }

    /// As [`timeout_after`](EventLoop::timeout_after), at `deadline`.
    ///
    /// # Errors
    /// [`Error::Selector`] if `fd` is not registered.
    pub fn timeout_at(&mut self, fd: RawFd, deadline: Instant) -> Result<Timer, Error> {
        self.check_user_fd(fd)?;
        let generation = self
            .selector
            .get(fd)
            .ok_or(crate::selector::Error::NotRegistered { fd })?
            .data()
            .generation;
        Ok(self.timers.insert(
            deadline,
            TimerAction::Source {
                fd,
                generation,
                deliver: H::timeout,
            },
        ))
    }
}

impl<H> Drop for EventLoop<H> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<H> fmt::Debug for EventLoop<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("backend", &self.selector.backend())
            .field("sources", &self.sources)
            .field("timers", &self.timers.len())
            .field("soon", &self.soon.len())
            .field("signals", &self.signals.as_ref().map_or(0, Signals::len))
            .field("stopping", &self.stopping)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// `delay` from now, clamped to about 30 years so it never overflows.
fn deadline_after(delay: Duration) -> Instant {
    const MAX_DELAY: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    Instant::now() + delay.min(MAX_DELAY)
}

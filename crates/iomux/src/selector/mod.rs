//! Layer 1, the selector API users call (the seeds' `selectors` module): [`Selector`] over select, poll
//! and epoll, with the user's data on each registration.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use iomux::selector::{Events, Interest, Selector};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! let (mut server, _) = listener.accept()?;
//!
//! let mut selector = Selector::new()?; // the best backend here: epoll on Linux
//! selector.register(&server, Interest::READ, "server side")?;
//! client.write_all(b"hello")?;
//!
//! let mut events = Events::with_capacity(64);
//! selector.select(&mut events, Some(Duration::from_secs(5)))?;
//! for event in &events {
//!     let key = selector.get(event.fd()).expect("only registered fds are reported");
//!     assert_eq!(*key.data(), "server side");
//!     assert!(event.ready().is_readable());
//! }
//! let mut buffer = [0; 5];
//! server.read_exact(&mut buffer)?;
//! assert_eq!(&buffer, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod events;
mod interest;
mod key;
mod registry;
mod trigger;
mod waker;

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use self::error::Error;
pub use self::events::{Event, Events};
pub use self::interest::{Interest, Ready};
pub use self::key::Key;
pub use self::trigger::Trigger;
pub use self::waker::Waker;
pub use crate::sys::notify::WakerKind;
pub use crate::sys::{BackendKind, Capabilities, UnknownBackend};

use self::registry::Registry;
use self::waker::WakerShared;
use crate::sys::notify::Notify;
use crate::sys::{AnyBackend, clock};

/// Watches many fds at once and reports which are ready, over the backend of your choice; each
/// registration carries a `T` (Python's `key.data`).
///
/// # The contract, for every backend
/// - **Timeouts.** `None` blocks until an event or a wake-up; `Some(Duration::ZERO)` polls; any other
///   timeout is rounded *up* to the [resolution](Capabilities::resolution) of the call in use (select
///   1 µs, poll and `epoll_wait` 1 ms, `epoll_pwait2` 1 ns), so a sub-millisecond timeout never becomes
///   a busy loop, and `select` never returns empty before the timeout has passed: a wait interrupted
///   by a signal (EINTR), or ended only by events of unregistered fds, resumes with the remaining time
///   (measured on the coarse clock, so such a resumed wait may end up to two ticks late, never early).
/// - **Triggers.** [`Trigger::Level`] everywhere; [`Trigger::Edge`] on epoll only (select and poll
///   refuse it with [`Error::Unsupported`], never silently falling back to level); [`Trigger::Oneshot`]
///   natively on epoll and emulated on select and poll: after it is reported once, the fd is silent
///   until [`modify`](Selector::modify) re-arms it. With edge triggering, read or write until
///   `WouldBlock`: data already there is not reported again.
/// - **Spurious events.** A readiness report is a hint: the IO call may still return `WouldBlock`, so
///   use non-blocking fds.
/// - **Closed fds.** Close an fd only after unregistering it. If it is closed while registered, the
///   registration stays until `unregister`, which then succeeds and returns the data; select and poll
///   report it as [`Ready::INVALID`] on every wait until then (select finds it after `EBADF`). epoll
///   drops a closed fd silently; but if a duplicate of it (`dup`, `fork`) is still open, the kernel
///   keeps reporting that duplicate's events under the old number, so they arrive under the old key —
///   and after `unregister` they still end waits early, though the selector drops them. If the number
///   is reused by a new fd before `unregister`, registering the new fd gives
///   [`Error::AlreadyRegistered`] (and select and poll watch the new fd under the old key).
/// - **Limits.** select cannot watch an fd at or above `FD_SETSIZE` (1024): `register` refuses it with
///   [`Error::FdTooLarge`] before anything is written into a bitmap.
#[derive(Debug)]
pub struct Selector<T> {
    backend: AnyBackend,
    registry: Registry<T>,
    /// Created by the first call to [`Selector::waker`].
    waker: Option<Arc<WakerShared>>,
    waker_kind: WakerKind,
    /// Whether the kernel may report an fd that is no longer registered. Set for good when
    /// `unregister` absorbs ENOENT or EBADF: the fd was closed while registered, and on epoll a
    /// duplicate of it may keep its entry alive. Until then every reported fd is registered (or is
    /// the waker's), so `select` skips looking each one up.
    may_report_strays: bool,
    /// Whether oneshot is emulated (select, poll): read once at creation, as `filter` needs it on
    /// every wait.
    emulate_oneshot: bool,
    /// The backend's timeout resolution in nanoseconds, fixed at creation (see `step_nanos`).
    resolution_nanos: u32,
}

/// Chooses a selector's backend and waker before creating it.
///
/// ```
/// use iomux::selector::{BackendKind, Selector, WakerKind};
/// let selector: Selector<u32> = Selector::builder()
///     .backend(BackendKind::Poll)
///     .waker(WakerKind::Pipe)
///     .build()?;
/// assert_eq!(selector.backend(), BackendKind::Poll);
/// # Ok::<(), iomux::selector::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Builder {
    backend: BackendKind,
    waker: WakerKind,
}

impl Default for Builder {
    /// The best backend for this platform and the waker it prefers.
    fn default() -> Builder {
        Builder {
            backend: BackendKind::best(),
            waker: WakerKind::Auto,
        }
    }
}

impl Builder {
    /// The backend to use (default: [`BackendKind::best`]).
    pub fn backend(mut self, backend: BackendKind) -> Builder {
        self.backend = backend;
        self
    }

    /// The kernel object behind [`Selector::waker`] (default: [`WakerKind::Auto`]).
    pub fn waker(mut self, waker: WakerKind) -> Builder {
        self.waker = waker;
        self
    }

    /// Creates the selector.
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] if the backend is not compiled in here; [`Error::Os`] if the kernel
    /// refuses to create it (e.g. EMFILE for epoll).
    pub fn build<T>(self) -> Result<Selector<T>, Error> {
        if !self.backend.is_available() {
            return Err(Error::BackendUnavailable {
                backend: self.backend,
            });
        }
        let backend = AnyBackend::new(self.backend).map_err(|source| Error::Os {
            operation: "create",
            fd: None,
            backend: self.backend,
            source,
        })?;
        Ok(Selector {
            emulate_oneshot: !backend.capabilities().native_oneshot,
            resolution_nanos: step_nanos(backend.capabilities().resolution),
            backend,
            registry: Registry::new(),
            waker: None,
            waker_kind: self.waker,
            may_report_strays: false,
        })
    }
}

impl Selector<()> {
    /// A builder, to choose the backend and the waker's kernel object. [`Builder::build`] chooses the
    /// type of the registrations' data, so `Selector::builder()` needs no annotation (the `()` here is
    /// only where the function lives, as `HashMap::new` lives with the default hasher).
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<T> Selector<T> {
    /// A selector over the best backend for this platform (epoll on Linux, poll elsewhere).
    ///
    /// # Errors
    /// [`Error::Os`] if the kernel refuses to create it.
    pub fn new() -> Result<Selector<T>, Error> {
        Builder::default().build()
    }

    /// A selector over the given backend.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn with_backend(backend: BackendKind) -> Result<Selector<T>, Error> {
        Builder::default().backend(backend).build()
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    /// What the backend in use can do: trigger modes, fd ceiling, timeout resolution.
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// Starts watching `fd` for `interest`, level-triggered, with `data` attached.
    ///
    /// # Errors
    /// [`Error::AlreadyRegistered`], [`Error::FdTooLarge`] (select, fd ≥ 1024), or [`Error::Os`] if the
    /// kernel refuses the fd (e.g. epoll and a regular file: EPERM).
    pub fn register(&mut self, fd: impl AsFd, interest: Interest, data: T) -> Result<(), Error> {
        self.register_with(fd, interest, Trigger::Level, data)
    }

    /// Starts watching `fd` for `interest` with the given trigger mode, with `data` attached.
    ///
    /// # Errors
    /// As [`register`](Selector::register), and [`Error::Unsupported`] for edge triggering on select
    /// or poll.
    pub fn register_with(
        &mut self,
        fd: impl AsFd,
        interest: Interest,
        trigger: Trigger,
        data: T,
    ) -> Result<(), Error> {
        let fd = fd.as_fd().as_raw_fd();
        if self.registry.contains(fd) || self.is_waker_fd(fd) {
            return Err(Error::AlreadyRegistered { fd });
        }
        self.check_supported(fd, trigger)?;
        self.backend
            .add(fd, interest, trigger)
            .map_err(|source| self.os_error("register", fd, source))?;
        self.registry.insert(Key {
            fd,
            interest,
            trigger,
            data,
        });
        Ok(())
    }

    /// Changes what `fd` is watched for and replaces its data, keeping its trigger mode; re-arms a
    /// oneshot registration. Returns the previous data.
    ///
    /// # Errors
    /// [`Error::NotRegistered`], or [`Error::Os`] (e.g. the fd was closed: epoll says EBADF). On error
    /// the registration is unchanged.
    pub fn modify(&mut self, fd: RawFd, interest: Interest, data: T) -> Result<T, Error> {
        let trigger = self.key(fd)?.trigger;
        self.modify_with(fd, interest, trigger, data)
    }

    /// Changes what `fd` is watched for, its trigger mode and its data; re-arms a oneshot
    /// registration. Returns the previous data.
    ///
    /// # Errors
    /// As [`modify`](Selector::modify), and [`Error::Unsupported`] for edge triggering on select or
    /// poll.
    pub fn modify_with(
        &mut self,
        fd: RawFd,
        interest: Interest,
        trigger: Trigger,
        data: T,
    ) -> Result<T, Error> {
        self.set_interest(fd, interest, trigger)?;
        let key = self
            .registry
            .get_mut(fd)
            .expect("set_interest succeeded, so fd is registered");
        Ok(std::mem::replace(&mut key.data, data))
    }

    /// Changes only what `fd` is watched for, keeping its data and trigger mode; re-arms a oneshot
    /// registration. The cheap way to toggle write interest while output is pending.
    ///
    /// # Errors
    /// As [`modify`](Selector::modify).
    pub fn modify_interest(&mut self, fd: RawFd, interest: Interest) -> Result<(), Error> {
        let trigger = self.key(fd)?.trigger;
        self.set_interest(fd, interest, trigger)
    }

    fn set_interest(
        &mut self,
        fd: RawFd,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<(), Error> {
        self.key(fd)?;
        self.check_supported(fd, trigger)?;
        self.backend
            .modify(fd, interest, trigger)
            .map_err(|source| self.os_error("modify", fd, source))?;
        let key = self.registry.get_mut(fd).expect("checked registered above");
        key.interest = interest;
        key.trigger = trigger;
        Ok(())
    }

    /// Stops watching `fd` and returns its data. Succeeds for an fd that was closed (or whose number
    /// was reused) while registered: the kernel's ENOENT or EBADF is absorbed.
    ///
    /// # Errors
    /// [`Error::NotRegistered`], or [`Error::Os`] for any other refusal (the registration then stays).
    pub fn unregister(&mut self, fd: RawFd) -> Result<T, Error> {
        self.key(fd)?;
        match self.backend.remove(fd) {
            Ok(()) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) => {
                self.may_report_strays = true;
            }
            Err(source) => return Err(self.os_error("unregister", fd, source)),
        }
        let key = self.registry.remove(fd).expect("checked registered above");
        Ok(key.data)
    }

    /// The registration of `fd`, if any.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<&Key<T>> {
        self.registry.get(fd)
    }

    /// The registration of `fd`, if any, to change its data in place.
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut Key<T>> {
        self.registry.get_mut(fd)
    }

    /// Every registration, in fd order.
    pub fn iter(&self) -> impl Iterator<Item = &Key<T>> {
        self.registry.iter()
    }

    /// The number of registrations.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.registry.len() == 0
    }

    /// Waits until a registered fd is ready, a [`Waker`] fires or `timeout` passes, and fills `events`
    /// (cleared first). Returns the number of events; 0 means the timeout passed or a waker fired
    /// ([`Events::is_woken`]). See the type's docs for the timeout contract.
    ///
    /// # Errors
    /// [`Error::Os`] if the wait itself fails (EINTR is never returned: the wait resumes).
    pub fn select(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        events.clear();
        let resolution = self.resolution_nanos;
        // When the wait began, on the cheap coarse clock. It is only consulted when a wait ends
        // without having waited its whole time (a signal, or only events of unregistered fds); the
        // deadline is then pushed back by that clock's lag, so a resumed wait may end late by a tick
        // or two, never early.
        let (start, mut remaining) = match timeout {
            None => (None, None),
            // A zero timeout polls: no deadline to keep, so no clock to read.
            Some(timeout) if timeout.is_zero() => (None, Some(Duration::ZERO)),
            Some(timeout) => (
                Some(clock::coarse_now()),
                Some(round_up(timeout, resolution)),
            ),
        };
        loop {
            let interrupted = match self
                .backend
                .wait(&mut events.list, events.capacity, remaining)
            {
                Ok(()) => false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => true,
                Err(source) => {
                    return Err(Error::Os {
                        operation: "select",
                        fd: None,
                        backend: self.backend(),
                        source,
                    });
                }
            };
            if !events.list.is_empty() {
                self.filter(events);
                if !events.list.is_empty() || events.woken {
                    return Ok(events.list.len());
                }
            } else if !interrupted && remaining.is_some_and(|left| left <= LONGEST_KERNEL_TIMEOUT) {
                // The kernel reported nothing and was not interrupted, so it waited the whole
                // (rounded-up) timeout: select(2), poll(2) and epoll_wait(2) never end a wait early.
                return Ok(0);
            }
            // A signal interrupted the wait, only events of unregistered fds came, or the timeout was
            // longer than the kernel takes. Wait again for whatever time is left.
            match (start, timeout) {
                (Some(start), Some(timeout)) => {
                    let Some(deadline) = start
                        .checked_add(clock::coarse_lag())
                        .and_then(|start| start.checked_add(timeout))
                    else {
                        // Too far away to represent: as good as no timeout.
                        remaining = None;
                        continue;
                    };
                    let left = deadline.saturating_sub(clock::now());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    remaining = Some(round_up(left, resolution));
                }
                // A poll (zero timeout) is not repeated.
                (None, Some(_)) => return Ok(0),
                _ => {}
            }
        }
    }

    /// Drops events of fds that are not registered, consumes a wake-up, and disarms emulated oneshot
    /// registrations that fired.
    fn filter(&mut self, events: &mut Events) {
        let notify = self.waker.as_ref().map(|shared| &shared.notify);
        let emulate_oneshot = self.emulate_oneshot;
        if !self.may_report_strays && !emulate_oneshot {
            // Every event is of a registered fd or of the waker, which appears at most once (a wait
            // reports each fd once): only the waker's event needs taking out.
            if let Some(notify) = notify {
                let waker_fd = notify.read_fd();
                if let Some(at) = events.list.iter().position(|event| event.fd() == waker_fd) {
                    events.list.remove(at);
                    notify.drain();
                    events.woken = true;
                }
            }
            return;
        }
        let (registry, backend) = (&self.registry, &mut self.backend);
        let mut woken = false;
        events.list.retain(|event| {
            if let Some(notify) = notify.filter(|notify| notify.read_fd() == event.fd()) {
                notify.drain();
                woken = true;
                return false;
            }
            match registry.get(event.fd()) {
                Some(key) => {
                    if emulate_oneshot && key.trigger == Trigger::Oneshot {
                        backend.disarm(event.fd());
                    }
                    true
                }
                // A duplicate of an fd that was closed and unregistered, still in epoll's set.
                None => false,
            }
        });
        events.woken = woken;
    }

    /// A [`Waker`] for this selector, to end a blocked [`select`](Selector::select) from another thread.
    /// The first call creates the notification fd (an eventfd, or a pipe: see [`WakerKind`]) and
    /// registers it internally; later calls return clones.
    ///
    /// # Errors
    /// [`Error::Os`] if the fd cannot be created (EMFILE), [`Error::FdTooLarge`] if select cannot
    /// watch its number.
    pub fn waker(&mut self) -> Result<Waker, Error> {
        if let Some(shared) = &self.waker {
            return Ok(Waker::new(Arc::clone(shared)));
        }
        let backend = self.backend();
        let notify = Notify::new(self.waker_kind).map_err(|source| Error::Os {
            operation: "create waker",
            fd: None,
            backend,
            source,
        })?;
        let fd = notify.read_fd();
        self.check_supported(fd, Trigger::Level)?;
        self.backend
            .add(fd, Interest::READ, Trigger::Level)
            .map_err(|source| self.os_error("register waker", fd, source))?;
        let shared = Arc::new(WakerShared {
            notify,
            backend,
            closed: AtomicBool::new(false),
        });
        self.waker = Some(Arc::clone(&shared));
        Ok(Waker::new(shared))
    }

    /// Closes the selector, releasing its kernel object (epoll's fd) and reporting the error
    /// `close(2)` returns, which dropping it would discard. Its wakers then return
    /// [`Error::SelectorClosed`].
    ///
    /// # Errors
    /// [`Error::Os`] if `close(2)` fails.
    pub fn close(mut self) -> Result<(), Error> {
        self.mark_closed();
        let backend_kind = self.backend();
        // Swap in a backend without a kernel object so Drop has nothing left to release.
        let backend = std::mem::replace(
            &mut self.backend,
            AnyBackend::Poll(crate::sys::poll::PollBackend::new()),
        );
        backend.close().map_err(|source| Error::Os {
            operation: "close",
            fd: None,
            backend: backend_kind,
            source,
        })
    }

    fn mark_closed(&self) {
        if let Some(shared) = &self.waker {
            shared.closed.store(true, Ordering::Release);
        }
    }

    fn key(&self, fd: RawFd) -> Result<&Key<T>, Error> {
        self.registry.get(fd).ok_or(Error::NotRegistered { fd })
    }

    fn is_waker_fd(&self, fd: RawFd) -> bool {
        self.waker
            .as_ref()
            .is_some_and(|shared| shared.notify.read_fd() == fd)
    }

    fn check_supported(&self, fd: RawFd, trigger: Trigger) -> Result<(), Error> {
        let capabilities = self.backend.capabilities();
        if trigger == Trigger::Edge && !capabilities.edge {
            return Err(Error::Unsupported {
                backend: self.backend(),
                trigger,
            });
        }
        if let Some(limit) = capabilities.fd_limit.filter(|&limit| fd >= limit) {
            return Err(Error::FdTooLarge {
                fd,
                limit,
                backend: self.backend(),
            });
        }
        Ok(())
    }

    fn os_error(&self, operation: &'static str, fd: RawFd, source: io::Error) -> Error {
        Error::Os {
            operation,
            fd: Some(fd),
            backend: self.backend(),
            source,
        }
    }
}

impl<T> Drop for Selector<T> {
    fn drop(&mut self) {
        self.mark_closed();
    }
}

/// The longest timeout every backend passes to the kernel whole: poll(2) and epoll_wait(2) take an
/// `int` of milliseconds. A longer wait is cut short by the backend and resumed by `select`.
const LONGEST_KERNEL_TIMEOUT: Duration = Duration::from_millis(libc::c_int::MAX as u64);

/// `timeout` rounded up to a whole multiple of `step_nanos`.
#[inline]
fn round_up(timeout: Duration, step_nanos: u32) -> Duration {
    // The step divides a second (see `step_nanos`), so only the fraction of a second needs rounding.
    let fraction = timeout.subsec_nanos();
    let rounded = fraction.div_ceil(step_nanos) * step_nanos;
    if rounded == fraction {
        return timeout;
    }
    Duration::from_secs(timeout.as_secs()).saturating_add(Duration::from_nanos(u64::from(rounded)))
}

/// A backend's timeout resolution as a step of nanoseconds that divides a second (1 ns, 1 µs and
/// 1 ms all do); any other resolution is taken as the next such step up, so rounding stays upward.
fn step_nanos(resolution: Duration) -> u32 {
    const STEPS: [u32; 4] = [1, 1_000, 1_000_000, 1_000_000_000];
    let nanos = resolution.as_nanos();
    STEPS
        .into_iter()
        .find(|&step| u128::from(step) >= nanos)
        .unwrap_or(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_never_shortens() {
        let ms = Duration::from_millis(1);
        assert_eq!(round_up(Duration::from_micros(1), step_nanos(ms)), ms);
        assert_eq!(
            round_up(Duration::from_micros(1500), step_nanos(ms)),
            2 * ms
        );
        assert_eq!(round_up(2 * ms, step_nanos(ms)), 2 * ms);
        assert_eq!(round_up(Duration::ZERO, step_nanos(ms)), Duration::ZERO);
        assert_eq!(
            round_up(
                Duration::from_nanos(1),
                step_nanos(Duration::from_micros(1))
            ),
            Duration::from_micros(1)
        );
        assert_eq!(
            round_up(Duration::from_nanos(7), step_nanos(Duration::from_nanos(1))),
            Duration::from_nanos(7)
        );
        // The fraction rounds up into the next whole second.
        assert_eq!(
            round_up(Duration::new(3, 999_999_001), step_nanos(ms)),
            Duration::from_secs(4)
        );
        assert_eq!(round_up(Duration::MAX, step_nanos(ms)), Duration::MAX);
        // A resolution that does not divide a second is taken as the next step up.
        assert_eq!(
            round_up(
                Duration::from_nanos(10),
                step_nanos(Duration::from_nanos(7))
            ),
            Duration::from_micros(1)
        );
        assert_eq!(
            round_up(
                Duration::from_millis(2500),
                step_nanos(Duration::from_secs(1))
            ),
            Duration::from_secs(3)
        );
    }
}

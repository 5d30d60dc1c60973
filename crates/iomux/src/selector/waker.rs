//! [`Waker`]: wakes a selector blocked in `select()` from another thread. Layer 1, the selector API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Error;
use crate::sys::BackendKind;
use crate::sys::notify::Notify;

/// A handle that ends a blocked [`Selector::select`](super::Selector::select) from any thread; the wait
/// returns with [`Events::is_woken`](super::Events::is_woken) set.
///
/// Wake-ups coalesce: several before the next wait end one wait. Once its selector is closed or
/// dropped, [`wake`](Waker::wake) returns [`Error::SelectorClosed`]; the fd it writes to stays open as
/// long as any waker does, so a wake can never land in an unrelated, reused fd.
///
/// ```
/// use std::time::Duration;
/// use iomux::selector::{Events, Selector};
///
/// let mut selector = Selector::<()>::new()?;
/// let waker = selector.waker()?;
/// std::thread::spawn(move || waker.wake());
/// let mut events = Events::with_capacity(8);
/// selector.select(&mut events, None)?; // returns once the other thread wakes it
/// assert!(events.is_woken());
/// # Ok::<(), iomux::selector::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Waker {
    shared: Arc<WakerShared>,
}

/// What a selector and its wakers share.
#[derive(Debug)]
pub(crate) struct WakerShared {
    pub(crate) notify: Notify,
    /// The selector's backend, for error messages.
    pub(crate) backend: BackendKind,
    /// Set when the selector is closed or dropped.
    pub(crate) closed: AtomicBool,
}

impl Waker {
    pub(crate) fn new(shared: Arc<WakerShared>) -> Waker {
        Waker { shared }
    }

    /// Wakes the selector.
    ///
    /// # Errors
    /// [`Error::SelectorClosed`] once the selector is gone; [`Error::Os`] if the write fails.
    pub fn wake(&self) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::SelectorClosed);
        }
        self.shared.notify.wake().map_err(|source| Error::Os {
            operation: "wake",
            fd: Some(self.shared.notify.read_fd()),
            backend: self.shared.backend,
            source,
        })
    }
}

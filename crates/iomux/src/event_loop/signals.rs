//! Unix signals as ordinary loop callbacks: [`EventLoop::on_signal`] and
//! [`EventLoop::remove_signal`], over `signal-hook`'s flag and self-pipe actions (the design is in the
//! event loop's module docs, under "Signals"). Layer 2, the callback event loop.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use signal_hook::SigId;

use super::{Error, EventLoop, Handler, Source};
use crate::selector::Interest;
use crate::sys::signal::{Disposition, disposition};

/// A signal callback: called in the loop, with the signal's number.
pub(crate) type SignalCallback<H> = Box<dyn FnMut(&mut EventLoop<H>, i32)>;

/// A loop's signal state: its socket pair and one entry per signal it listens to.
pub(crate) struct Signals<H> {
    /// The read end, registered with the selector (level-triggered, readable).
    read: UnixStream,
    /// The write end; each signal's pipe action owns a duplicate of it.
    write: UnixStream,
    /// One entry per signal, at most one per number.
    entries: Vec<Entry<H>>,
    /// Signals found pending in the current round; kept to reuse its memory.
    fired: Vec<i32>,
}

/// One signal a loop listens to.
struct Entry<H> {
    signal: i32,
    /// Set by the signal handler before it sends the wake-up byte; cleared by the loop.
    arrived: Arc<AtomicBool>,
    /// The flag action and the pipe action, unregistered on drop.
    actions: [SigId; 2],
    /// `None` only while the callback runs.
    callback: Option<SignalCallback<H>>,
    /// Changes whenever the callback is replaced, so a running callback is not put back over its
    /// replacement.
    generation: u64,
}

impl<H> Drop for Entry<H> {
    fn drop(&mut self) {
        for action in self.actions {
            signal_hook::low_level::unregister(action);
        }
        release(self.signal);
    }
}

impl<H> Signals<H> {
    fn new() -> io::Result<Signals<H>> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Signals {
            read,
            write,
            entries: Vec::new(),
            fired: Vec::new(),
        })
    }

    /// The fd the selector watches.
    pub(crate) fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The number of signals listened to.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Starts listening to `signal` (not yet listened to) with `callback`.
    fn listen(
        &mut self,
        signal: i32,
        callback: SignalCallback<H>,
        generation: u64,
    ) -> Result<(), Error> {
        if signal_hook::consts::FORBIDDEN.contains(&signal) {
            return Err(Error::ForbiddenSignal { signal });
        }
        let os_error = |source| Error::Signal { signal, source };
        acquire(signal).map_err(os_error)?;
        let arrived = Arc::new(AtomicBool::new(false));
        let flag = match signal_hook::flag::register(signal, Arc::clone(&arrived)) {
            Ok(id) => id,
            Err(source) => {
                release(signal);
                return Err(os_error(source));
            }
        };
        let pipe = self
            .write
            .try_clone()
            .and_then(|write| signal_hook::low_level::pipe::register(signal, write));
        let pipe = match pipe {
            Ok(id) => id,
            Err(source) => {
                signal_hook::low_level::unregister(flag);
                release(signal);
                return Err(os_error(source));
            }
        };
        self.entries.push(Entry {
            signal,
            arrived,
            actions: [flag, pipe],
            callback: Some(callback),
            generation,
        });
        Ok(())
    }

    fn entry_mut(&mut self, signal: i32) -> Option<&mut Entry<H>> {
        self.entries.iter_mut().find(|entry| entry.signal == signal)
    }

    /// Drops the signals whose callback is missing: it panicked while running (and was dropped while
    /// unwinding), so nothing is left to call.
    pub(crate) fn forget_running(&mut self) {
        self.entries.retain(|entry| entry.callback.is_some());
    }

    /// Empties the socket and collects the signals whose flag was set into `fired`.
    fn collect(&mut self) {
        let mut buffer = [0u8; 64];
        // Read until WouldBlock (or an error, which the next wake-up would report again). The flags
        // are read after draining: a signal arriving in between sets its flag before its byte, so it
        // is either seen now or woken for again.
        while matches!((&self.read).read(&mut buffer), Ok(n) if n > 0) {}
        self.fired.clear();
        for entry in &self.entries {
            if entry.arrived.swap(false, Ordering::AcqRel) {
                self.fired.push(entry.signal);
            }
        }
    }
}

impl<H: Handler> EventLoop<H> {
    /// Calls `callback` in the loop, as an ordinary callback, each time `signal` (a `libc::SIG*`
    /// number, e.g. `libc::SIGTERM`) is delivered to the process; replaces this loop's previous
    /// callback for `signal`. Deliveries that arrive before the loop looks coalesce into one call.
    ///
    /// The typical use is a graceful stop: on `SIGINT` or `SIGTERM`, stop accepting, let the open
    /// connections finish, then [`stop`](EventLoop::stop). A signal callback does not keep
    /// [`run`](EventLoop::run) going by itself. Several loops (in several threads) may listen to the
    /// same signal: each gets the call. See [Signals](super#signals) for how the handler works and
    /// what is restored when the loop lets go.
    ///
    /// # Errors
    /// [`Error::ForbiddenSignal`] for `SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE` and `SIGSEGV`;
    /// [`Error::Signal`] if the number is not a signal or the socket pair cannot be created;
    /// [`Error::Selector`] if the socket cannot be registered (select: its fd is at or above 1024).
    pub fn on_signal<F>(&mut self, signal: i32, callback: F) -> Result<(), Error>
    where
        F: FnMut(&mut EventLoop<H>, i32) + 'static,
    {
        self.generation += 1;
        let generation = self.generation;
        if self.signals.is_none() {
            let signals = Signals::new().map_err(|source| Error::Signal { signal, source })?;
            self.selector.register(
                &signals.read,
                Interest::READ,
                Source {
                    generation: 0,
                    handler: None,
                },
            )?;
            self.signal_fd = Some(signals.fd());
            self.signals = Some(signals);
        }
        let signals = self
            .signals
            .as_mut()
            .expect("created above when it was missing");
        if let Some(entry) = signals.entry_mut(signal) {
            entry.callback = Some(Box::new(callback));
            entry.generation = generation;
            return Ok(());
        }
        signals.listen(signal, Box::new(callback), generation)
    }

    /// Stops listening to `signal` in this loop; returns whether it was listened to. If no other loop
    /// listens to it, its previous disposition is back in force (see [Signals](super#signals)).
    pub fn remove_signal(&mut self, signal: i32) -> bool {
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        let before = signals.entries.len();
        signals.entries.retain(|entry| entry.signal != signal);
        signals.entries.len() != before
    }

    /// Runs the callbacks of the signals that arrived; returns how many ran.
    pub(super) fn dispatch_signals(&mut self) -> usize {
        let Some(signals) = self.signals.as_mut() else {
            return 0;
        };
        signals.collect();
        let fired = std::mem::take(&mut signals.fired);
        let mut count = 0;
        for &signal in &fired {
            let Some(entry) = self
                .signals
                .as_mut()
                .and_then(|signals| signals.entry_mut(signal))
            else {
                continue; // removed by an earlier callback of this round
            };
            let generation = entry.generation;
            let Some(mut callback) = entry.callback.take() else {
                continue;
            };
            callback(self, signal);
            count += 1;
            if let Some(entry) = self
                .signals
                .as_mut()
                .and_then(|signals| signals.entry_mut(signal))
                .filter(|entry| entry.generation == generation && entry.callback.is_none())
            {
                entry.callback = Some(callback);
            }
        }
        if let Some(signals) = self.signals.as_mut() {
            signals.fired = fired;
        }
        count
    }
}

/// How the process as a whole deals with one signal: how many loops listen, and the flag that arms
/// the emulated default action when none does.
struct ProcessSignal {
    signal: i32,
    listeners: usize,
    /// `Some` if the disposition was the default when the first loop listened: the conditional default
    /// action, registered once, runs while this is `true`.
    restore_default: Option<Arc<AtomicBool>>,
}

/// The signals any loop of this process ever listened to.
static PROCESS_SIGNALS: Mutex<Vec<ProcessSignal>> = Mutex::new(Vec::new());

/// Counts one more listener of `signal`, disarming its default action.
fn acquire(signal: i32) -> io::Result<()> {
    let mut signals = PROCESS_SIGNALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let index = match signals.iter().position(|entry| entry.signal == signal) {
        Some(index) => index,
        None => {
            // The disposition before signal-hook installs its handler, read once per process.
            let restore_default = match disposition(signal)? {
                Disposition::Default => {
                    let armed = Arc::new(AtomicBool::new(false));
                    // Signals signal-hook knows no default for (real-time ones) cannot be emulated;
                    // they stay caught-and-ignored once no loop listens.
                    signal_hook::flag::register_conditional_default(signal, Arc::clone(&armed))
                        .ok()
                        .map(|_| armed)
                }
                Disposition::Ignore | Disposition::Handler => None,
            };
            signals.push(ProcessSignal {
                signal,
                listeners: 0,
                restore_default,
            });
            signals.len() - 1
        }
    };
    let entry = &mut signals[index];
    entry.listeners += 1;
    if let Some(armed) = &entry.restore_default {
        armed.store(false, Ordering::SeqCst);
    }
    Ok(())
}

/// Counts one listener of `signal` less; the last one re-arms its default action.
fn release(signal: i32) {
    let mut signals = PROCESS_SIGNALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(entry) = signals.iter_mut().find(|entry| entry.signal == signal) {
        entry.listeners = entry.listeners.saturating_sub(1);
        if entry.listeners == 0
            && let Some(armed) = &entry.restore_default
        {
            armed.store(true, Ordering::SeqCst);
        }
    }
}

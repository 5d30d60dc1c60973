//! Thread-per-core mode: N worker threads, each with its own [`Runtime`] and its own listener on one
//! shared port (`SO_REUSEPORT`: the kernel spreads new connections over the listeners), and a
//! [`Shutdown`] signal that stops them all. Layer 3, the coroutine runtime.
//!
//! ```
//! use std::io::{Read, Write};
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use iomux::runtime::{BackendKind, spawn, workers};
//!
//! let workers = workers::serve("127.0.0.1:0", 2, BackendKind::best(), |listener| async move {
//!     while let Ok((mut stream, _)) = listener.accept().await {
//!         spawn(async move {
//!             let mut buffer = [0; 1024];
//!             while let Ok(read @ 1..) = stream.read(&mut buffer).await {
//!                 if stream.write_all(&buffer[..read]).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! })?;
//! let mut client = std::net::TcpStream::connect(workers.local_addr())?;
//! client.write_all(b"ping")?;
//! let mut reply = [0; 4];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"ping");
//! workers.shutdown();
//! workers.join()?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;

use super::{BackendKind, Runtime};
use crate::net::TcpListener;
use crate::net::{each_address, listen};

/// Starts `workers` threads (0: one per core, from [`thread::available_parallelism`]), each running a
/// runtime over `backend` and `serve(listener)` on its own listener bound to `address` with
/// `SO_REUSEPORT`. With port 0 the first listener gets a port from the kernel and the others bind
/// that port. All listeners are bound before this returns, so connections are accepted as soon as it
/// does.
///
/// A worker runs until its `serve` future returns or [`Workers::shutdown`] is called; then its runtime
/// is dropped with every task on it, closing their connections. A server that wants to drain its
/// connections first can watch [`Workers::shutdown_signal`] itself.
///
/// # Errors
/// Binding a listener (e.g. `AddrInUse`) or starting a thread fails; the workers already started are
/// stopped first.
pub fn serve<F, Fut>(
    address: impl ToSocketAddrs,
    workers: usize,
    backend: BackendKind,
    serve: F,
) -> io::Result<Workers>
where
    F: Fn(TcpListener) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let count = match workers {
        0 => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        count => count,
    };
    let first = each_address(address, |address| listen(address, true))?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(listen(local_addr, true)?);
    }
    let serve = Arc::new(serve);
    let mut started = Workers {
        local_addr,
        threads: Vec::with_capacity(count),
        shutdown: Shutdown::new(),
    };
    for (index, listener) in listeners.into_iter().enumerate() {
        let serve = Arc::clone(&serve);
        let shutdown = started.shutdown.clone();
        let thread = thread::Builder::new()
            .name(format!("iomux-worker-{index}"))
            .spawn(move || run_worker(listener, backend, &*serve, &shutdown))?;
        started.threads.push(thread);
    }
    Ok(started)
}

fn run_worker<F, Fut>(
    listener: std::net::TcpListener,
    backend: BackendKind,
    serve: &F,
    shutdown: &Shutdown,
) -> io::Result<()>
where
    F: Fn(TcpListener) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = Runtime::with_backend(backend)?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        let mut work = pin!(serve(listener));
        let mut stop = shutdown.wait();
        poll_fn(|cx| {
            if work.as_mut().poll(cx).is_ready() || Pin::new(&mut stop).poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        Ok(())
    })
}

/// The running workers of [`serve`]. Dropping it shuts them down and waits for them.
pub struct Workers {
    local_addr: SocketAddr,
    threads: Vec<thread::JoinHandle<io::Result<()>>>,
    shutdown: Shutdown,
}

impl Workers {
    /// The address every worker's listener is bound to (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of worker threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are no workers (never, once `serve` succeeded).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Tells every worker to stop; returns at once ([`join`](Workers::join) waits).
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// The signal that stops the workers, to trigger from elsewhere (a signal-handling thread) or to
    /// watch inside `serve`.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits for every worker to stop (after [`shutdown`](Workers::shutdown), or when their `serve`
    /// futures return).
    ///
    /// # Errors
    /// The first worker's error: its runtime or listener registration failed, or its `serve` future
    /// panicked (the message is kept).
    pub fn join(mut self) -> io::Result<()> {
        self.join_all()
    }

    fn join_all(&mut self) -> io::Result<()> {
        let mut first_error = None;
        for (index, thread) in self.threads.drain(..).enumerate() {
            let result = thread.join().unwrap_or_else(|payload| {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic payload>".to_owned());
                Err(io::Error::other(format!(
                    "worker {index} panicked: {message}"
                )))
            });
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown.trigger();
        // Errors were the caller's to collect with `join`.
        let _ = self.join_all();
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("local_addr", &self.local_addr)
            .field("workers", &self.threads.len())
            .field("shutdown", &self.shutdown.is_triggered())
            .finish()
    }
}

/// A stop signal shared between threads: [`trigger`](Shutdown::trigger) it once, and every
/// [`wait`](Shutdown::wait) future, on any runtime, finishes.
///
/// ```
/// use iomux::runtime::{Runtime, workers::Shutdown};
///
/// let shutdown = Shutdown::new();
/// let remote = shutdown.clone();
/// let stopper = std::thread::spawn(move || remote.trigger());
/// Runtime::new()?.block_on(shutdown.wait());
/// assert!(shutdown.is_triggered());
/// stopper.join().unwrap();
/// # Ok::<(), iomux::runtime::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    waiters: Mutex<Waiters>,
}

/// The wakers of the pending `wait` futures; slots are reused, so the list is as long as the most
/// waiters ever pending at once.
#[derive(Default)]
struct Waiters {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // Nothing panics while the lock is held, so a poisoned lock still guards a consistent list.
        self.inner
            .waiters
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Triggers the signal and wakes every waiter; later calls do nothing.
    pub fn trigger(&self) {
        if self.inner.triggered.swap(true, Ordering::AcqRel) {
            return;
        }
        let wakers: Vec<Waker> = self
            .waiters()
            .wakers
            .iter_mut()
            .flat_map(Option::take)
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether the signal was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// A future that finishes once the signal is triggered.
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait {
            shutdown: self.clone(),
            slot: None,
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// The future of [`Shutdown::wait`].
#[derive(Debug)]
#[must_use = "a ShutdownWait does nothing unless awaited"]
pub struct ShutdownWait {
    shutdown: Shutdown,
    /// This waiter's slot in the waker list, once registered.
    slot: Option<usize>,
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shutdown.is_triggered() {
            return Poll::Ready(());
        }
        let mut waiters = this.shutdown.waiters();
        // Checked again under the lock: `trigger` sets the flag before taking the wakers.
        if this.shutdown.is_triggered() {
            return Poll::Ready(());
        }
        let waker = Some(cx.waker().clone());
        match this.slot {
            Some(slot) => waiters.wakers[slot] = waker,
            None => {
                let slot = match waiters.free.pop() {
                    Some(slot) => {
                        waiters.wakers[slot] = waker;
                        slot
                    }
                    None => {
                        waiters.wakers.push(waker);
                        waiters.wakers.len() - 1
                    }
                };
                this.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut waiters = self.shutdown.waiters();
            waiters.wakers[slot] = None;
            waiters.free.push(slot);
        }
    }
}

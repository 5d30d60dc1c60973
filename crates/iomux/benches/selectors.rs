//! Criterion benchmarks of one wait + dispatch per selector implementation: iomux's three backends,
//! the peers mio and polling, and a raw libc `epoll_wait` loop as the floor.
//!
//! The fixture is the one `iomux bench selectors` uses: N UDP sockets bound to 127.0.0.1, K of them
//! holding one unread datagram (so they stay readable, level-triggered), the ready ones spread evenly
//! among the N. One operation is a wait with a 1000 ms timeout (it returns at once: K fds are ready)
//! followed by a lookup of the user's data for each event, the same work for every implementation:
//! iomux finds its `Key` by fd, the others index a `Vec` by the token the kernel hands back. Every
//! operation checks that exactly K events came back. One implementation's fixture is torn down before
//! the next is built.
//!
//! mio registers everything edge-triggered, which cannot keep a level steady state without a re-arm
//! syscall per event that the others do not pay; so its sockets are added level-triggered to mio's own
//! epoll instance with `epoll_ctl`, and what is timed is mio's `Poll::poll` and `Events`, unchanged.
//!
//! Three modes, chosen by the arguments after `--`:
//! - none (or criterion's own flags): criterion, one group per scenario (`wait/n=1000/k=10`) and one
//!   id per implementation (`iomux-epoll`, `mio`, …);
//! - `--rounds R`: R rounds (at least 5) of every scenario with the implementations' order rotated
//!   each round; prints the median, fastest and slowest round per implementation, and the per-round
//!   ratio of iomux-epoll to each epoll peer;
//! - `--count IMPL N K OPS`: exactly OPS operations of one implementation and nothing else, to count
//!   instructions under `valgrind --tool=callgrind`;
//! - `--instructions`: runs itself in `--count` mode under callgrind, twice per implementation and
//!   scenario with different OPS, and prints the difference per operation: the user-space
//!   instructions of one wait + dispatch, a figure that does not move with the machine's load.
//!
//! This file and one test helper are the only places outside `sys` allowed `unsafe`: the raw libc
//! floor and the registrations with mio's and polling's epoll; each block has its `// SAFETY:` note.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use iomux::selector::{BackendKind, Error as SelectorError, Events, Interest, Selector};

/// The registered fds (N) of each scenario.
const FDS: [usize; 4] = [10, 100, 1000, 10_000];
/// The ready fds (K) of each scenario.
const ACTIVE: [usize; 2] = [1, 10];
/// The timeout passed to every wait; it never elapses, since K ≥ 1 fds are ready.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Room for every ready fd in one wait.
const CAPACITY: usize = 1024;
/// select's ceiling.
const FD_SETSIZE: usize = 1024;

/// The implementations, in the order of the first round.
const IMPLEMENTATIONS: [Implementation; 6] = [
    Implementation::Iomux(BackendKind::Select),
    Implementation::Iomux(BackendKind::Poll),
    Implementation::Iomux(BackendKind::Epoll),
    Implementation::Mio,
    Implementation::Polling,
    Implementation::LibcEpoll,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Implementation {
    Iomux(BackendKind),
    Mio,
    Polling,
    LibcEpoll,
}

impl Implementation {
    fn name(self) -> &'static str {
        match self {
            Implementation::Iomux(BackendKind::Select) => "iomux-select",
            Implementation::Iomux(BackendKind::Poll) => "iomux-poll",
            Implementation::Iomux(_) => "iomux-epoll",
            Implementation::Mio => "mio",
            Implementation::Polling => "polling",
            Implementation::LibcEpoll => "libc-epoll",
        }
    }

    fn from_name(name: &str) -> Option<Implementation> {
        IMPLEMENTATIONS.into_iter().find(|imp| imp.name() == name)
    }
}

/// N UDP sockets on loopback, K of them holding one unread datagram.
struct Sockets {
    sockets: Vec<UdpSocket>,
}

impl Sockets {
    fn new(fds: usize, active: usize) -> io::Result<Sockets> {
        let mut sockets = Vec::with_capacity(fds);
        for _ in 0..fds {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            socket.set_nonblocking(true)?;
            sockets.push(socket);
        }
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let ready: Vec<usize> = (0..active)
            .map(|slice| (2 * slice + 1) * fds / (2 * active))
            .collect();
        for &index in &ready {
            sender.send_to(b"x", sockets[index].local_addr()?)?;
        }
        // Loopback delivers at once in practice; make sure (bounded) before anything is timed.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut byte = [0; 1];
        for &index in &ready {
            while sockets[index].peek(&mut byte).is_err() {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "a datagram sent over loopback did not arrive",
                    ));
                }
                std::thread::yield_now();
            }
        }
        Ok(Sockets { sockets })
    }
}

/// One implementation with every socket registered for reading, level-triggered, the user's data for
/// socket `i` being `i`.
enum Waiter {
    Iomux {
        selector: Selector<u64>,
        events: Events,
    },
    Mio {
        poll: mio::Poll,
        events: mio::Events,
        data: Vec<u64>,
    },
    Polling {
        poller: polling::Poller,
        events: polling::Events,
        data: Vec<u64>,
    },
    LibcEpoll {
        epoll: OwnedFd,
        buffer: Vec<libc::epoll_event>,
        data: Vec<u64>,
    },
}

/// `epoll_ctl(EPOLL_CTL_ADD)` of `fd` for reading, level-triggered, with `token` as its data.
fn epoll_add(epoll: i32, fd: i32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        u64: token,
    };
    // SAFETY: `event` is a live epoll_event the kernel only reads; both fds are open (the caller
    // holds the epoll instance and the socket).
    let result = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Waiter {
    /// Registers every socket; `Ok(None)` if the implementation cannot watch them (select, fd ≥ 1024).
    fn new(imp: Implementation, sockets: &Sockets) -> io::Result<Option<Waiter>> {
        let data: Vec<u64> = (0..sockets.sockets.len() as u64).collect();
        let waiter = match imp {
            Implementation::Iomux(backend) => {
                let mut selector = Selector::with_backend(backend).map_err(io::Error::other)?;
                for (index, socket) in sockets.sockets.iter().enumerate() {
                    match selector.register(socket, Interest::READ, index as u64) {
                        Ok(()) => {}
                        Err(SelectorError::FdTooLarge { .. }) => return Ok(None),
                        Err(err) => return Err(io::Error::other(err)),
                    }
                }
                Waiter::Iomux {
                    selector,
                    events: Events::with_capacity(CAPACITY),
                }
            }
            Implementation::Mio => {
                let poll = mio::Poll::new()?;
                for (index, socket) in sockets.sockets.iter().enumerate() {
                    epoll_add(poll.as_raw_fd(), socket.as_raw_fd(), index as u64)?;
                }
                Waiter::Mio {
                    poll,
                    events: mio::Events::with_capacity(CAPACITY),
                    data,
                }
            }
            Implementation::Polling => {
                let poller = polling::Poller::new()?;
                for (index, socket) in sockets.sockets.iter().enumerate() {
                    // SAFETY: `teardown` deletes every socket from the poller before the sockets
                    // are dropped, as `add_with_mode` requires.
                    unsafe {
                        poller.add_with_mode(
                            socket,
                            polling::Event::readable(index),
                            polling::PollMode::Level,
                        )?;
                    }
                }
                Waiter::Polling {
                    poller,
                    events: polling::Events::with_capacity(
                        NonZeroUsize::new(CAPACITY).expect("CAPACITY is not zero"),
                    ),
                    data,
                }
            }
            Implementation::LibcEpoll => {
                // SAFETY: epoll_create1 takes no pointers; EPOLL_CLOEXEC is a valid flag.
                let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                if raw == -1 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
                let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
                for (index, socket) in sockets.sockets.iter().enumerate() {
                    epoll_add(epoll.as_raw_fd(), socket.as_raw_fd(), index as u64)?;
                }
                Waiter::LibcEpoll {
                    epoll,
                    buffer: vec![libc::epoll_event { events: 0, u64: 0 }; CAPACITY],
                    data,
                }
            }
        };
        Ok(Some(waiter))
    }

    /// One operation: wait, then read the user's data of each ready fd. Returns the number of events
    /// and the sum of their data.
    #[inline(never)]
    fn wait_dispatch(&mut self) -> (usize, u64) {
        let mut sum = 0u64;
        let ready = match self {
            Waiter::Iomux { selector, events } => {
                let ready = selector
                    .select(events, Some(TIMEOUT))
                    .expect("select failed");
                for event in &*events {
                    let key = selector
                        .get(event.fd())
                        .expect("only registered fds are reported");
                    sum = sum.wrapping_add(*key.data());
                }
                ready
            }
            Waiter::Mio { poll, events, data } => {
                poll.poll(events, Some(TIMEOUT)).expect("poll failed");
                let mut ready = 0;
                for event in events.iter() {
                    sum = sum.wrapping_add(data[event.token().0]);
                    ready += 1;
                }
                ready
            }
            Waiter::Polling {
                poller,
                events,
                data,
            } => {
                events.clear();
                let ready = poller.wait(events, Some(TIMEOUT)).expect("wait failed");
                for event in events.iter() {
                    sum = sum.wrapping_add(data[event.key]);
                }
                ready
            }
            Waiter::LibcEpoll {
                epoll,
                buffer,
                data,
            } => {
                // SAFETY: the buffer holds `buffer.len()` initialised entries for the kernel to
                // overwrite, and the epoll fd is open.
                let ready = unsafe {
                    libc::epoll_wait(
                        epoll.as_raw_fd(),
                        buffer.as_mut_ptr(),
                        buffer.len() as i32,
                        TIMEOUT.as_millis() as i32,
                    )
                };
                assert!(
                    ready >= 0,
                    "epoll_wait failed: {}",
                    io::Error::last_os_error()
                );
                for event in &buffer[..ready as usize] {
                    sum = sum.wrapping_add(data[event.u64 as usize]);
                }
                ready as usize
            }
        };
        (ready, sum)
    }

    /// `ops` operations, each checked to report exactly `active` events.
    fn run(&mut self, ops: u64, active: usize) {
        for _ in 0..ops {
            let (ready, sum) = self.wait_dispatch();
            assert_eq!(
                ready, active,
                "a wait reported the wrong number of ready fds"
            );
            black_box(sum);
        }
    }

    /// Unregisters what must be unregistered before the sockets close, then drops the waiter.
    fn teardown(self, sockets: &Sockets) {
        if let Waiter::Polling { poller, .. } = &self {
            for socket in &sockets.sockets {
                poller.delete(socket).expect("delete a registered socket");
            }
        }
    }
}

/// Builds the sockets and the waiter of one scenario, runs `body` with them, tears both down.
/// Returns `None` if the implementation cannot hold these fds (select above `FD_SETSIZE`).
fn with_fixture<R>(
    imp: Implementation,
    fds: usize,
    active: usize,
    body: impl FnOnce(&mut Waiter) -> R,
) -> Option<R> {
    if imp == Implementation::Iomux(BackendKind::Select) && fds >= FD_SETSIZE {
        return None;
    }
    let sockets = Sockets::new(fds, active).expect("build the sockets");
    let mut waiter = Waiter::new(imp, &sockets).expect("register the sockets")?;
    // One checked operation before anything is timed.
    waiter.run(1, active);
    let result = body(&mut waiter);
    waiter.teardown(&sockets);
    Some(result)
}

fn criterion_benches(criterion: &mut Criterion) {
    for fds in FDS {
        for active in ACTIVE {
            let mut group = criterion.benchmark_group(format!("wait/n={fds}/k={active}"));
            for imp in IMPLEMENTATIONS {
                with_fixture(imp, fds, active, |waiter| {
                    group.bench_function(imp.name(), |bencher| {
                        bencher.iter(|| {
                            let (ready, sum) = waiter.wait_dispatch();
                            assert_eq!(ready, active);
                            sum
                        })
                    });
                });
            }
            group.finish();
        }
    }
}

/// Nanoseconds per operation: calibrated to about 2 ms, then the median of five ~20 ms batches.
fn sample(waiter: &mut Waiter, active: usize) -> f64 {
    let mut ops = 1u64;
    let per_op = loop {
        let start = Instant::now();
        waiter.run(ops, active);
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_millis(2) {
            break elapsed.as_secs_f64() / ops as f64;
        }
        ops *= 2;
    };
    let batch = ((0.020 / per_op) as u64).max(1);
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            waiter.run(batch, active);
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    median(&mut batches)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// `median [min–max]` in one unit.
fn format_range(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    let mid = median(&mut sorted);
    let (scale, unit) = if mid >= 1e6 {
        (1e6, "ms")
    } else if mid >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    let digits = |value: f64| {
        let value = value / scale;
        if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.2}")
        }
    };
    format!(
        "{} {unit} [{}–{}]",
        digits(mid),
        digits(sorted[0]),
        digits(sorted[sorted.len() - 1])
    )
}

/// `--rounds R`: every scenario, R rounds, order rotated, printed as Markdown tables.
fn rounds_mode(rounds: usize) {
    assert!(rounds >= 5, "--rounds takes at least 5");
    let mut samples: BTreeMap<(usize, usize, Implementation), Vec<f64>> = BTreeMap::new();
    for fds in FDS {
        for active in ACTIVE {
            for round in 0..rounds {
                let mut order = IMPLEMENTATIONS;
                order.rotate_left(round % IMPLEMENTATIONS.len());
                for imp in order {
                    if let Some(ns) =
                        with_fixture(imp, fds, active, |waiter| sample(waiter, active))
                    {
                        samples.entry((fds, active, imp)).or_default().push(ns);
                    }
                }
                eprint!(".");
            }
            eprintln!(" n={fds} k={active}");
        }
    }

    println!(
        "One wait + dispatch, median of {rounds} rounds (implementations' order rotated each \
         round) [fastest–slowest round]; ready fds spread, timeout {} ms.\n",
        TIMEOUT.as_millis()
    );
    let mut header = String::from("| N | K |");
    let mut rule = String::from("|---:|---:|");
    for imp in IMPLEMENTATIONS {
        header += &format!(" {} |", imp.name());
        rule += "---|";
    }
    println!("{header}\n{rule}");
    for fds in FDS {
        for active in ACTIVE {
            let mut line = format!("| {fds} | {active} |");
            for imp in IMPLEMENTATIONS {
                match samples.get(&(fds, active, imp)) {
                    Some(values) => line += &format!(" {} |", format_range(values)),
                    None => line += " — |",
                }
            }
            println!("{line}");
        }
    }

    let epoll = Implementation::Iomux(BackendKind::Epoll);
    let peers = [
        Implementation::LibcEpoll,
        Implementation::Mio,
        Implementation::Polling,
    ];
    println!(
        "\niomux-epoll ÷ peer, per round (both measured in the same round), median \
         [min–max]; below 1.00 means iomux-epoll is faster.\n"
    );
    let mut header = String::from("| N | K |");
    let mut rule = String::from("|---:|---:|");
    for peer in peers {
        header += &format!(" ÷ {} |", peer.name());
        rule += "---|";
    }
    println!("{header}\n{rule}");
    for fds in FDS {
        for active in ACTIVE {
            let mut line = format!("| {fds} | {active} |");
            for peer in peers {
                let (Some(ours), Some(theirs)) = (
                    samples.get(&(fds, active, epoll)),
                    samples.get(&(fds, active, peer)),
                ) else {
                    line += " — |";
                    continue;
                };
                let mut ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
                let mid = median(&mut ratios);
                line += &format!(
                    " {mid:.3} [{:.3}–{:.3}] |",
                    ratios[0],
                    ratios[ratios.len() - 1]
                );
            }
            println!("{line}");
        }
    }
}

/// `--count IMPL N K OPS`: exactly OPS operations, for instruction counting.
fn count_mode(args: &[String]) {
    let usage = "usage: --count IMPL N K OPS (IMPL: iomux-select, iomux-poll, iomux-epoll, mio, \
                 polling, libc-epoll)";
    let [imp, fds, active, ops] = args else {
        panic!("{usage}");
    };
    let imp = Implementation::from_name(imp).unwrap_or_else(|| panic!("{usage}"));
    let fds: usize = fds.parse().unwrap_or_else(|_| panic!("{usage}"));
    let active: usize = active.parse().unwrap_or_else(|_| panic!("{usage}"));
    let ops: u64 = ops.parse().unwrap_or_else(|_| panic!("{usage}"));
    with_fixture(imp, fds, active, |waiter| waiter.run(ops, active))
        .unwrap_or_else(|| panic!("{} cannot watch {fds} fds", imp.name()));
    println!("{} n={fds} k={active}: {ops} operations", imp.name());
}

/// The scenarios of `--instructions`: N is irrelevant to epoll's user-space work, so one N.
const INSTRUCTION_SCENARIOS: [(usize, usize); 2] = [(1000, 1), (1000, 10)];
/// The two operation counts whose difference is measured, so set-up and tear-down cancel out.
const INSTRUCTION_OPS: [u64; 2] = [10_000, 30_000];

/// The instructions callgrind counted in one run of this binary in `--count` mode.
fn callgrind_instructions(imp: Implementation, fds: usize, active: usize, ops: u64) -> u64 {
    let this = std::env::current_exe().expect("the path of this benchmark binary");
    let out_file = std::env::temp_dir().join(format!("iomux-callgrind-{}.out", std::process::id()));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&this)
        .args(["--count", imp.name()])
        .args([fds.to_string(), active.to_string(), ops.to_string()])
        .output()
        .expect("run valgrind (is it installed?)");
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "valgrind failed: {stderr}");
    // callgrind ends with "==PID== Collected : 123456".
    stderr
        .lines()
        .find_map(|line| line.split("Collected : ").nth(1))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in valgrind's output: {stderr}"))
}

/// `--instructions`: user-space instructions per operation, for every implementation.
fn instructions_mode() {
    println!(
        "User-space instructions per wait + dispatch (valgrind --tool=callgrind; the difference \
         between {} and {} operations, so set-up cancels out); ready fds spread, timeout {} ms.\n",
        INSTRUCTION_OPS[0],
        INSTRUCTION_OPS[1],
        TIMEOUT.as_millis()
    );
    let mut header = String::from("| N | K |");
    let mut rule = String::from("|---:|---:|");
    for imp in IMPLEMENTATIONS {
        header += &format!(" {} |", imp.name());
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    for (fds, active) in INSTRUCTION_SCENARIOS {
        let mut line = format!("| {fds} | {active} |");
        for imp in IMPLEMENTATIONS {
            let [few, many] =
                INSTRUCTION_OPS.map(|ops| callgrind_instructions(imp, fds, active, ops));
            let per_op =
                many.saturating_sub(few) as f64 / (INSTRUCTION_OPS[1] - INSTRUCTION_OPS[0]) as f64;
            line += &format!(" {per_op:.0} |");
        }
        println!("{line}");
    }
}

fn main() {
    iomux::raise_nofile_limit().expect("raise the open-file limit");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--rounds") {
        let rounds = args
            .get(at + 1)
            .and_then(|value| value.parse().ok())
            .expect("--rounds takes a number of rounds");
        rounds_mode(rounds);
        return;
    }
    if args.iter().any(|arg| arg == "--instructions") {
        instructions_mode();
        return;
    }
    if let Some(at) = args.iter().position(|arg| arg == "--count") {
        let rest: Vec<String> = args[at + 1..]
            .iter()
            .take_while(|arg| !arg.starts_with("--"))
            .cloned()
            .collect();
        count_mode(&rest);
        return;
    }
    // Short enough that a full run takes minutes: 47 benchmarks of about 2 s each.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
}

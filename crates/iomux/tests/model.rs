//! Model-based selector tests: random sequences of register / modify / unregister / close / dup /
//! reopen / write / read / select over real socketpairs and pipes, run against every backend and
//! checked after every step against a small in-memory model of what must be reported.
//!
//! The model holds the kernel's side as plainly as it can: open files (each with its unread bytes and
//! the fd numbers that refer to it), the selector's registrations by fd number, and for epoll the
//! interest-list entries the kernel keeps per (file, number) — which outlive a closed number while a
//! duplicate keeps the file open. What must be reported:
//! - level: whenever the file is ready for what is asked (readable iff unread bytes, writable iff a
//!   socket: a pipe's read end never is);
//! - oneshot: once, then nothing until `modify` re-arms it;
//! - edge (epoll only): once per new arrival, and once after a register or modify finds it ready;
//! - a closed number: select and poll report `INVALID` (once for a oneshot), epoll is silent unless a
//!   duplicate keeps the file open, and then reports the file's readiness under the old number;
//! - typed errors: `AlreadyRegistered`, `NotRegistered`, `Unsupported` (edge on select and poll), and
//!   an OS error where epoll's kernel refuses (modify of a closed or reused number).
//!
//! Every wait has a zero timeout: writes to a socketpair or pipe are visible at once, so each step's
//! answer is decided when it is taken. Cases hold the fd budget exclusively (fd numbers must stay
//! below select's `FD_SETSIZE`, and reuse of numbers is part of the model).

#[path = "util/mod.rs"]
#[allow(dead_code)] // shared with the other suites, which use the rest
mod util;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use iomux::selector::{BackendKind, Error, Events, Interest, Ready, Selector, Trigger};
use proptest::prelude::*;

/// Slots of fds a case plays with; each holds one socketpair or pipe at a time.
const SLOTS: usize = 3;

/// Duplicates are made at or above this number, so they never take a number the model expects the
/// kernel to hand to a reopened slot (and they stay below `FD_SETSIZE`).
const DUP_FLOOR: RawFd = 900;

/// Peer ends are moved at or above this number, so a registered number, once closed, is only ever
/// reused by a slot's own fd, which the model follows.
const PEER_FLOOR: RawFd = 700;

/// The most duplicates a slot holds at once.
const MAX_DUPS: usize = 2;

/// One step of a case.
#[derive(Clone, Debug)]
enum Op {
    /// `register_with` the slot's current fd.
    Register {
        slot: usize,
        interest: Interest,
        trigger: Trigger,
        data: u8,
    },
    /// `modify_with` the slot's current fd number (which may be closed, reused or unregistered).
    Modify {
        slot: usize,
        interest: Interest,
        trigger: Trigger,
        data: u8,
    },
    /// `unregister` the slot's current fd number.
    Unregister { slot: usize },
    /// Close the slot's fd (its duplicates stay open).
    Close { slot: usize },
    /// Duplicate the slot's fd.
    Dup { slot: usize },
    /// Close the slot's duplicates.
    DropDups { slot: usize },
    /// Give a slot whose file is gone a new socketpair or pipe (which takes the lowest free number,
    /// often the closed one).
    Reopen { slot: usize },
    /// The peer writes `len` bytes to the slot's file.
    Write { slot: usize, len: usize },
    /// Read up to `len` bytes from the slot's file (through its fd or a duplicate).
    Read { slot: usize, len: usize },
    /// One wait with a zero timeout.
    Select,
}

fn interest() -> impl Strategy<Value = Interest> {
    prop_oneof![
        Just(Interest::READ),
        Just(Interest::WRITE),
        Just(Interest::READ.add(Interest::WRITE)),
    ]
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        2 => Just(Trigger::Level),
        2 => Just(Trigger::Oneshot),
        2 => Just(Trigger::Edge),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        4 => (slot.clone(), interest(), trigger(), any::<u8>()).prop_map(
            |(slot, interest, trigger, data)| Op::Register { slot, interest, trigger, data }
        ),
        2 => (slot.clone(), interest(), trigger(), any::<u8>()).prop_map(
            |(slot, interest, trigger, data)| Op::Modify { slot, interest, trigger, data }
        ),
        2 => slot.clone().prop_map(|slot| Op::Unregister { slot }),
        1 => slot.clone().prop_map(|slot| Op::Close { slot }),
        1 => slot.clone().prop_map(|slot| Op::Dup { slot }),
        1 => slot.clone().prop_map(|slot| Op::DropDups { slot }),
        1 => slot.clone().prop_map(|slot| Op::Reopen { slot }),
        3 => (slot.clone(), 1..4usize).prop_map(|(slot, len)| Op::Write { slot, len }),
        2 => (slot, 1..4usize).prop_map(|(slot, len)| Op::Read { slot, len }),
        5 => Just(Op::Select),
    ]
}

/// The real fds of one slot.
#[derive(Debug)]
struct Slot {
    /// Whether the slot holds a socketpair (else a pipe).
    socket: bool,
    /// The model's file id of the slot's current file.
    file: usize,
    /// The fd number the slot's fd has or last had.
    number: RawFd,
    /// The slot's fd (a socket, or a pipe's read end), while open.
    local: Option<File>,
    /// The other end, which writes to `local`'s file.
    peer: File,
    /// Open duplicates of `local`.
    dups: Vec<File>,
}

/// What the kernel knows about one file.
#[derive(Debug)]
struct FileState {
    socket: bool,
    /// Bytes written by the peer and not read yet.
    unread: usize,
    /// How many fds refer to it; at 0 it is gone, and epoll forgets it.
    refs: usize,
}

impl FileState {
    /// What the file is ready for now.
    fn ready(&self) -> Ready {
        let mut ready = Ready::EMPTY;
        if self.unread > 0 {
            ready = ready | Ready::READABLE;
        }
        if self.socket {
            ready = ready | Ready::WRITABLE;
        }
        ready
    }
}

/// A registration, as the selector's registry holds it.
#[derive(Debug, Clone)]
struct Registration {
    interest: Interest,
    trigger: Trigger,
    /// For oneshot on select and poll: not yet reported since the last register or modify.
    armed: bool,
    data: u8,
}

/// An entry of epoll's interest list: the kernel keys it by (file, number).
#[derive(Debug)]
struct Epitem {
    file: usize,
    number: RawFd,
    interest: Interest,
    trigger: Trigger,
    /// Oneshot: not fired since the last add or modify.
    armed: bool,
    /// On the kernel's ready list: an arrival, add or modify found it ready (what edge reports).
    queued: bool,
}

/// The model and the real thing side by side.
struct Case {
    kind: BackendKind,
    selector: Selector<u8>,
    events: Events,
    slots: Vec<Slot>,
    files: Vec<FileState>,
    /// Open fd numbers -> file id.
    fds: BTreeMap<RawFd, usize>,
    registry: BTreeMap<RawFd, Registration>,
    epitems: Vec<Epitem>,
}

fn mask(interest: Interest) -> Ready {
    let mut ready = Ready::EMPTY;
    if interest.is_readable() {
        ready = ready | Ready::READABLE;
    }
    if interest.is_writable() {
        ready = ready | Ready::WRITABLE;
    }
    ready
}

fn intersect(a: Ready, b: Ready) -> Ready {
    let mut both = Ready::EMPTY;
    for flag in [Ready::READABLE, Ready::WRITABLE] {
        if a.contains(flag) && b.contains(flag) {
            both = both | flag;
        }
    }
    both
}

impl Case {
    fn new(kind: BackendKind, sockets: &[bool]) -> Case {
        let mut case = Case {
            kind,
            selector: util::selector(kind),
            events: Events::with_capacity(16),
            slots: Vec::new(),
            files: Vec::new(),
            fds: BTreeMap::new(),
            registry: BTreeMap::new(),
            epitems: Vec::new(),
        };
        for &socket in sockets {
            let (file, number, local, peer) = case.open(socket);
            case.slots.push(Slot {
                socket,
                file,
                number,
                local: Some(local),
                peer,
                dups: Vec::new(),
            });
        }
        case
    }

    /// A new socketpair or pipe: (file id, number, local end, peer end).
    fn open(&mut self, socket: bool) -> (usize, RawFd, File, File) {
        let (local, peer): (OwnedFd, OwnedFd) = if socket {
            let (local, peer) = UnixStream::pair().expect("socketpair");
            local.set_nonblocking(true).expect("non-blocking socket");
            (local.into(), peer.into())
        } else {
            let (reader, writer) = util::pipe();
            (reader.into(), writer.into())
        };
        let peer = util::os::dup_at_least(&peer, PEER_FLOOR).expect("moving the peer end up");
        let number = local.as_raw_fd();
        assert!(number < PEER_FLOOR, "fd {number} reached the peers' range");
        let file = self.files.len();
        self.files.push(FileState {
            socket,
            unread: 0,
            refs: 1,
        });
        assert!(
            self.fds.insert(number, file).is_none(),
            "fd {number} was open"
        );
        (file, number, File::from(local), File::from(peer))
    }

    /// Drops one reference to `number`'s file; epoll forgets a file with none left.
    fn close_number(&mut self, number: RawFd) {
        let file = self.fds.remove(&number).expect("closing an open number");
        self.files[file].refs -= 1;
        if self.files[file].refs == 0 {
            self.epitems.retain(|item| item.file != file);
        }
    }

    fn epitem(&mut self, number: RawFd) -> Option<&mut Epitem> {
        let file = *self.fds.get(&number)?;
        self.epitems
            .iter_mut()
            .find(|item| item.file == file && item.number == number)
    }

    fn apply(&mut self, op: &Op) {
        let epoll = self.kind == BackendKind::Epoll;
        match *op {
            Op::Register {
                slot,
                interest,
                trigger,
                data,
            } => {
                let Some(local) = &self.slots[slot].local else {
                    return; // A closed fd cannot be borrowed to register it.
                };
                let number = self.slots[slot].number;
                let result = self.selector.register_with(local, interest, trigger, data);
                if self.registry.contains_key(&number) {
                    assert!(
                        matches!(result, Err(Error::AlreadyRegistered { fd }) if fd == number),
                        "{op:?}: {result:?}"
                    );
                    return;
                }
                if trigger == Trigger::Edge && !epoll {
                    assert!(
                        matches!(result, Err(Error::Unsupported { .. })),
                        "{op:?}: {result:?}"
                    );
                    return;
                }
                result.unwrap_or_else(|error| panic!("{op:?}: {error}"));
                self.registry.insert(
                    number,
                    Registration {
                        interest,
                        trigger,
                        armed: true,
                        data,
                    },
                );
                if epoll {
                    let file = self.slots[slot].file;
                    let queued = !intersect(self.files[file].ready(), mask(interest)).is_empty();
                    self.epitems.push(Epitem {
                        file,
                        number,
                        interest,
                        trigger,
                        armed: true,
                        queued,
                    });
                }
            }
            Op::Modify {
                slot,
                interest,
                trigger,
                data,
            } => {
                let number = self.slots[slot].number;
                let result = self.selector.modify_with(number, interest, trigger, data);
                let Some(previous) = self.registry.get(&number).map(|key| key.data) else {
                    assert!(
                        matches!(result, Err(Error::NotRegistered { fd }) if fd == number),
                        "{op:?}: {result:?}"
                    );
                    return;
                };
                if trigger == Trigger::Edge && !epoll {
                    assert!(
                        matches!(result, Err(Error::Unsupported { .. })),
                        "{op:?}: {result:?}"
                    );
                    return;
                }
                if epoll {
                    // The kernel looks the entry up by the file the number has now.
                    let ready = self.fds.get(&number).map(|&file| self.files[file].ready());
                    let Some(item) = self.epitem(number) else {
                        assert!(
                            matches!(result, Err(Error::Os { .. })),
                            "{op:?}: {result:?}"
                        );
                        return;
                    };
                    item.interest = interest;
                    item.trigger = trigger;
                    item.armed = true;
                    item.queued =
                        !intersect(ready.expect("the entry's number is open"), mask(interest))
                            .is_empty();
                }
                assert_eq!(result.ok(), Some(previous), "{op:?}: the previous data");
                self.registry.insert(
                    number,
                    Registration {
                        interest,
                        trigger,
                        armed: true,
                        data,
                    },
                );
            }
            Op::Unregister { slot } => {
                let number = self.slots[slot].number;
                let result = self.selector.unregister(number);
                match self.registry.remove(&number) {
                    None => assert!(
                        matches!(result, Err(Error::NotRegistered { fd }) if fd == number),
                        "{op:?}: {result:?}"
                    ),
                    Some(key) => {
                        assert_eq!(result.ok(), Some(key.data), "{op:?}: the data");
                        // A closed number's entry stays in epoll while a duplicate keeps its file.
                        if let Some(&file) = self.fds.get(&number) {
                            self.epitems
                                .retain(|item| !(item.file == file && item.number == number));
                        }
                    }
                }
            }
            Op::Close { slot } => {
                if self.slots[slot].local.take().is_some() {
                    let number = self.slots[slot].number;
                    self.close_number(number);
                }
            }
            Op::Dup { slot } => {
                let target = &mut self.slots[slot];
                let (Some(local), true) = (&target.local, target.dups.len() < MAX_DUPS) else {
                    return;
                };
                let dup = util::os::dup_at_least(local, DUP_FLOOR).expect("dup");
                let file = target.file;
                target.dups.push(File::from(dup));
                let number = target.dups.last().expect("just pushed").as_raw_fd();
                self.files[file].refs += 1;
                assert!(
                    self.fds.insert(number, file).is_none(),
                    "fd {number} was open"
                );
            }
            Op::DropDups { slot } => {
                let dups = std::mem::take(&mut self.slots[slot].dups);
                for dup in dups {
                    let number = dup.as_raw_fd();
                    drop(dup);
                    self.close_number(number);
                }
            }
            Op::Reopen { slot } => {
                let old = self.slots[slot].file;
                if self.files[old].refs > 0 {
                    return;
                }
                let socket = self.slots[slot].socket;
                let (file, number, local, peer) = self.open(socket);
                let target = &mut self.slots[slot];
                target.file = file;
                target.number = number;
                target.local = Some(local);
                target.peer = peer;
            }
            Op::Write { slot, len } => {
                let file = self.slots[slot].file;
                if self.files[file].refs == 0 {
                    return; // Nobody reads a gone file; the peer would get EPIPE.
                }
                self.slots[slot]
                    .peer
                    .write_all(&vec![b'x'; len])
                    .expect("the peer writes");
                self.files[file].unread += len;
                for item in &mut self.epitems {
                    // The arrival's wake-up carries EPOLLIN: it queues entries that ask to read.
                    if item.file == file && item.interest.is_readable() {
                        item.queued = true;
                    }
                }
            }
            Op::Read { slot, len } => {
                let target = &mut self.slots[slot];
                let unread = self.files[target.file].unread;
                if unread == 0 {
                    return; // A read would block (pipes are blocking).
                }
                let mut buffer = [0u8; 8];
                let got = match (&mut target.local, target.dups.first()) {
                    (Some(local), _) => local.read(&mut buffer[..len]),
                    (None, Some(mut dup)) => dup.read(&mut buffer[..len]),
                    (None, None) => return,
                }
                .expect("read");
                assert_eq!(got, len.min(unread), "{op:?}: bytes read");
                self.files[target.file].unread -= got;
            }
            Op::Select => self.check_select(),
        }
        assert_eq!(self.selector.len(), self.registry.len(), "after {op:?}");
    }

    /// One zero-timeout wait, compared with what the model says must be reported.
    fn check_select(&mut self) {
        let count = self
            .selector
            .select(&mut self.events, Some(Duration::ZERO))
            .unwrap_or_else(|error| panic!("select: {error}"));
        assert_eq!(count, self.events.len());
        let mut reported: Vec<(RawFd, Ready)> = self
            .events
            .iter()
            .map(|event| (event.fd(), event.ready()))
            .collect();
        reported.sort_by_key(|&(fd, ready)| (fd, format!("{ready:?}")));

        let mut expected = Vec::new();
        if self.kind == BackendKind::Epoll {
            for item in &mut self.epitems {
                let ready = intersect(self.files[item.file].ready(), mask(item.interest));
                let report = match item.trigger {
                    Trigger::Level => !ready.is_empty(),
                    Trigger::Oneshot => item.armed && !ready.is_empty(),
                    Trigger::Edge => item.queued && !ready.is_empty(),
                };
                item.queued = false;
                if report {
                    if item.trigger == Trigger::Oneshot {
                        item.armed = false;
                    }
                    // The selector drops what it has no registration for.
                    if self.registry.contains_key(&item.number) {
                        expected.push((item.number, ready));
                    }
                }
            }
        } else {
            for (&number, key) in &mut self.registry {
                let ready = match self.fds.get(&number) {
                    Some(&file) => intersect(self.files[file].ready(), mask(key.interest)),
                    None => Ready::INVALID,
                };
                let report = match key.trigger {
                    Trigger::Oneshot => key.armed && !ready.is_empty(),
                    _ => !ready.is_empty(),
                };
                if report {
                    if key.trigger == Trigger::Oneshot {
                        key.armed = false;
                    }
                    expected.push((number, ready));
                }
            }
        }
        expected.sort_by_key(|&(fd, ready)| (fd, format!("{ready:?}")));
        assert_eq!(reported, expected, "{}: what select reported", self.kind);
    }
}

fn run(kind: BackendKind, sockets: &[bool], ops: &[Op]) {
    let _budget = util::exclusive();
    let mut case = Case::new(kind, sockets);
    for op in ops {
        case.apply(op);
    }
    case.apply(&Op::Select);
}

/// 64 cases per backend, a second or so; `PROPTEST_CASES=5000` for a long search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn select_matches_the_model(
        sockets in prop::collection::vec(any::<bool>(), SLOTS),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(BackendKind::Select, &sockets, &ops);
    }

    #[test]
    fn poll_matches_the_model(
        sockets in prop::collection::vec(any::<bool>(), SLOTS),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(BackendKind::Poll, &sockets, &ops);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn epoll_matches_the_model(
        sockets in prop::collection::vec(any::<bool>(), SLOTS),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(BackendKind::Epoll, &sockets, &ops);
    }
}

/// The longest path through the model, rarely drawn at random: fd A registered, duplicated, closed
/// and unregistered (epoll keeps A's entry, as the duplicate keeps its file open); another slot's fd
/// B is closed and reopened on A's old number and registered. A's arrivals then end waits under the
/// reused number — epoll reports them and the selector cannot tell them from B's, a spurious
/// readiness report the contract allows. select and poll watch only B.
#[test]
fn a_stray_epoll_entry_reports_under_a_reused_number() {
    let ops = [
        Op::Register {
            slot: 0,
            interest: Interest::READ,
            trigger: Trigger::Level,
            data: 1,
        },
        Op::Dup { slot: 0 },
        Op::Close { slot: 0 },
        Op::Select,
        Op::Unregister { slot: 0 },
        Op::Close { slot: 1 },
        Op::Reopen { slot: 1 },
        Op::Register {
            slot: 1,
            interest: Interest::READ,
            trigger: Trigger::Level,
            data: 2,
        },
        Op::Write { slot: 0, len: 2 },
        Op::Select,
        Op::Read { slot: 0, len: 2 },
        Op::Select,
        Op::Write { slot: 1, len: 1 },
        Op::Select,
    ];
    let kinds = [BackendKind::Select, BackendKind::Poll];
    #[cfg(target_os = "linux")]
    let kinds = [kinds[0], kinds[1], BackendKind::Epoll];
    for kind in kinds {
        run(kind, &[true, true, true], &ops);
    }
}

//! `iomux bench selectors`: the experiment at the heart of the notes. For N registered fds with K of
//! them ready it times one wait + dispatch on each backend, then prints a table and optionally writes
//! JSON records and a log-log SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::io::{self, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iomux::selector::{BackendKind, Error as SelectorError, Events, Interest, Selector};
use plotters::prelude::*;
use serde::Serialize;

use crate::args::{BenchArgs, BenchTarget, Placement, SelectorsArgs};

/// select's ceiling: it cannot watch an fd at or above `FD_SETSIZE`.
const SELECT_FD_LIMIT: u32 = 1024;
/// Descriptors the process holds besides the N sockets (stdio, the sender, epoll's fd, slack).
const SPARE_FDS: u64 = 32;
/// The first calibration run lasts at least this long.
const WARMUP: Duration = Duration::from_millis(2);
/// Each timed batch lasts about this long; a sample is the median of [`BATCHES`] batches.
const BATCH: Duration = Duration::from_millis(8);
const BATCHES: usize = 5;
/// How long a fixture may take for its K datagrams to arrive before the run gives up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the benchmark the command line names.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.target {
        BenchTarget::Selectors(args) => selectors(args),
    }
}

/// One measured point, as written to `--json`.
#[derive(Debug, Clone, Serialize)]
struct Record {
    /// `select`, `poll` or `epoll`.
    backend: String,
    /// N, the registered fds.
    fds: u32,
    /// K, the ready fds among them.
    active: u32,
    /// The median over the rounds, in nanoseconds per wait + dispatch.
    ns_per_op: f64,
    /// The fastest round, ns per operation.
    min: f64,
    /// The slowest round, ns per operation.
    max: f64,
    /// The number of rounds the median is taken over.
    samples: u32,
    /// `start`, `spread` or `end`.
    placement: String,
    /// The timeout passed to each wait.
    timeout_ms: u64,
}

/// What the run measures, after defaults and checks.
#[derive(Debug)]
struct Plan {
    backends: Vec<BackendKind>,
    fds: Vec<u32>,
    active: Vec<u32>,
    placement: Placement,
    timeout: Duration,
    timeout_ms: u64,
    rounds: u32,
}

impl Plan {
    fn from_args(args: &SelectorsArgs, fd_limit: u64) -> Result<Plan> {
        let mut backends = if args.backends.is_empty() {
            BackendKind::available()
        } else {
            args.backends.clone()
        };
        backends.sort();
        backends.dedup();
        let mut fds = args.fds.clone();
        fds.sort_unstable();
        fds.dedup();
        let mut active = args.active.clone();
        active.sort_unstable();
        active.dedup();
        if let Some(&largest) = fds.last()
            && u64::from(largest) + SPARE_FDS > fd_limit
        {
            bail!(
                "--fds {largest} needs about {} descriptors but this process may open {fd_limit}; \
                 ask for fewer fds or raise the hard limit (ulimit -Hn)",
                u64::from(largest) + SPARE_FDS
            );
        }
        Ok(Plan {
            backends,
            fds,
            active,
            placement: args.placement,
            timeout: Duration::from_millis(args.timeout_ms),
            timeout_ms: args.timeout_ms,
            rounds: args.rounds,
        })
    }

    /// The (N, K) pairs to measure: every K that fits in N.
    fn points(&self) -> Vec<(u32, u32)> {
        let mut points = Vec::new();
        for &fds in &self.fds {
            for &active in self.active.iter().filter(|&&active| active <= fds) {
                points.push((fds, active));
            }
        }
        points
    }

    /// Why `backend` cannot be measured with `fds` registered fds, if it cannot.
    fn unfit(backend: BackendKind, fds: u32) -> Option<String> {
        (backend == BackendKind::Select && fds >= SELECT_FD_LIMIT).then(|| {
            format!("select cannot watch fds numbered {SELECT_FD_LIMIT} or more (FD_SETSIZE)")
        })
    }
}

/// The result of timing one backend at one point in one round.
enum Outcome {
    /// Nanoseconds per operation.
    Measured(f64),
    /// The backend cannot hold this many fds; why.
    Skipped(String),
}

fn selectors(args: SelectorsArgs) -> Result<()> {
    let fd_limit = iomux::raise_nofile_limit().context("cannot raise the open-file limit")?;
    let plan = Plan::from_args(&args, fd_limit)?;
    let points = plan.points();
    if points.is_empty() {
        bail!("no point to measure: every --active value is larger than every --fds value");
    }

    let mut out = io::stdout().lock();
    write_header(&mut out, &plan)?;

    let mut skipped: BTreeMap<(BackendKind, u32), String> = BTreeMap::new();
    for &fds in &plan.fds {
        for &backend in &plan.backends {
            if let Some(reason) = Plan::unfit(backend, fds) {
                skipped.insert((backend, fds), reason);
            }
        }
    }
    let runs = points
        .iter()
        .map(|&(fds, _)| {
            plan.backends
                .iter()
                .filter(|&&backend| !skipped.contains_key(&(backend, fds)))
                .count() as u64
        })
        .sum::<u64>()
        * u64::from(plan.rounds);
    let progress = progress_bar(runs);

    let mut samples: BTreeMap<(BackendKind, u32, u32), Vec<f64>> = BTreeMap::new();
    for &(fds, active) in &points {
        for round in 0..plan.rounds {
            // Rotate the order each round so that no backend always runs first (cold caches) or last.
            let mut order = plan.backends.clone();
            let len = order.len();
            order.rotate_left(round as usize % len);
            for backend in order {
                if skipped.contains_key(&(backend, fds)) {
                    continue;
                }
                progress.set_message(format!(
                    "{backend} N={fds} K={active} round {}/{}",
                    round + 1,
                    plan.rounds
                ));
                let outcome = measure(backend, fds, active, &plan).with_context(|| {
                    format!("measuring {backend} with {fds} fds, {active} ready")
                })?;
                match outcome {
                    Outcome::Measured(ns) => {
                        samples.entry((backend, fds, active)).or_default().push(ns)
                    }
                    Outcome::Skipped(reason) => {
                        skipped.insert((backend, fds), reason);
                    }
                }
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();

    let records = records(&plan, &points, &samples, &skipped);
    write_table(&mut out, &plan, &points, &records, &skipped)?;
    write_growth(&mut out, &plan, &records)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&records).context("cannot encode the results")?;
        fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    if let Some(path) = &args.svg {
        draw_chart(path, &plan, &records)
            .with_context(|| format!("cannot draw the chart {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    out.flush()?;
    Ok(())
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    let progress = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("the template is a valid literal")
            .progress_chars("=> "),
    );
    progress
}

/// N UDP sockets on loopback, K of them holding an unread datagram, all registered with a selector
/// of one backend. Dropping it closes every fd.
struct Fixture {
    selector: Selector<u64>,
    events: Events,
    /// Owns the registered fds; the selector holds their numbers.
    _sockets: Vec<UdpSocket>,
}

impl Fixture {
    /// Builds the fixture, or `Ok(None)` if the backend refuses one of the fd numbers (select).
    fn build(
        backend: BackendKind,
        fds: u32,
        active: u32,
        placement: Placement,
    ) -> Result<Option<Fixture>> {
        let mut sockets = Vec::with_capacity(fds as usize);
        for _ in 0..fds {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .context("cannot bind a UDP socket on 127.0.0.1")?;
            socket.set_nonblocking(true)?;
            sockets.push(socket);
        }
        let mut selector = Selector::with_backend(backend)
            .with_context(|| format!("cannot create a {backend} selector"))?;
        for (index, socket) in sockets.iter().enumerate() {
            match selector.register(socket, Interest::READ, index as u64) {
                Ok(()) => {}
                Err(SelectorError::FdTooLarge { .. }) => return Ok(None),
                Err(err) => return Err(err).context("cannot register a socket"),
            }
        }
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .context("cannot bind the sending UDP socket")?;
        for index in ready_indices(fds, active, placement) {
            let target = sockets[index as usize].local_addr()?;
            sender
                .send_to(b"x", target)
                .with_context(|| format!("cannot send a datagram to {target}"))?;
        }
        drop(sender);

        // Loopback delivers at once in practice; wait (bounded) until all K are reported.
        let mut events = Events::with_capacity(1024.max(active as usize));
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        loop {
            let ready = selector.select(&mut events, Some(Duration::from_millis(10)))?;
            if ready == active as usize {
                break;
            }
            if Instant::now() >= deadline {
                bail!("only {ready} of the {active} sockets sent a datagram became readable");
            }
        }
        Ok(Some(Fixture {
            selector,
            events,
            _sockets: sockets,
        }))
    }

    /// `iterations` operations: wait, then look up each ready fd's key and read its data.
    fn run(&mut self, iterations: u64, timeout: Duration, active: usize) -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..iterations {
            let ready = self.selector.select(&mut self.events, Some(timeout))?;
            let mut sum = 0u64;
            for event in &self.events {
                let key = self.selector.get(event.fd()).ok_or_else(|| {
                    anyhow!("fd {} was reported but is not registered", event.fd())
                })?;
                sum = sum.wrapping_add(*key.data());
            }
            if ready != active {
                bail!("a wait reported {ready} ready fds instead of {active}");
            }
            black_box(sum);
        }
        Ok(start.elapsed())
    }
}

/// The indices (in opening order, which is fd order) of the K sockets made ready.
fn ready_indices(fds: u32, active: u32, placement: Placement) -> Vec<u32> {
    match placement {
        Placement::Start => (0..active).collect(),
        Placement::End => (fds - active..fds).collect(),
        // The middle of each of K equal slices; distinct because each slice holds at least one fd.
        Placement::Spread => (0..active)
            .map(|slice| {
                ((2 * u64::from(slice) + 1) * u64::from(fds) / (2 * u64::from(active))) as u32
            })
            .collect(),
    }
}

/// Times one backend at one point: calibrate, then the median of [`BATCHES`] timed batches.
fn measure(backend: BackendKind, fds: u32, active: u32, plan: &Plan) -> Result<Outcome> {
    let Some(mut fixture) = Fixture::build(backend, fds, active, plan.placement)? else {
        return Ok(Outcome::Skipped(format!(
            "{backend} refused an fd numbered {SELECT_FD_LIMIT} or more: other open fds pushed \
             the sockets' numbers up"
        )));
    };
    let active = active as usize;
    let mut iterations = 1u64;
    let per_op = loop {
        let elapsed = fixture.run(iterations, plan.timeout, active)?;
        if elapsed >= WARMUP {
            break elapsed.as_secs_f64() / iterations as f64;
        }
        iterations *= 2;
    };
    let batch = ((BATCH.as_secs_f64() / per_op) as u64).max(1);
    let mut per_batch = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let elapsed = fixture.run(batch, plan.timeout, active)?;
        per_batch.push(elapsed.as_nanos() as f64 / batch as f64);
    }
    fixture
        .selector
        .close()
        .with_context(|| format!("cannot close the {backend} selector"))?;
    Ok(Outcome::Measured(median(&mut per_batch)))
}

/// The median of a non-empty list (the mean of the middle two for an even length).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn records(
    plan: &Plan,
    points: &[(u32, u32)],
    samples: &BTreeMap<(BackendKind, u32, u32), Vec<f64>>,
    skipped: &BTreeMap<(BackendKind, u32), String>,
) -> Vec<Record> {
    let mut records = Vec::new();
    for &(fds, active) in points {
        for &backend in &plan.backends {
            if skipped.contains_key(&(backend, fds)) {
                continue;
            }
            let Some(values) = samples.get(&(backend, fds, active)) else {
                continue;
            };
            let mut values = values.clone();
            let ns_per_op = median(&mut values);
            records.push(Record {
                backend: backend.name().to_owned(),
                fds,
                active,
                ns_per_op,
                min: values[0],
                max: values[values.len() - 1],
                samples: values.len() as u32,
                placement: plan.placement.name().to_owned(),
                timeout_ms: plan.timeout_ms,
            });
        }
    }
    records
}

fn write_header(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    let placement = match plan.placement {
        Placement::Start => "start: the K ready fds are the first ones opened (lowest numbers)",
        Placement::Spread => "spread: the K ready fds are spread evenly among the N",
        Placement::End => "end: the K ready fds are the last ones opened (highest numbers)",
    };
    let timeout = if plan.timeout_ms == 0 {
        "0 ms per wait: it only polls, so select and poll skip setting up a wait on each fd"
            .to_owned()
    } else {
        format!(
            "{} ms per wait: it returns at once since K fds are ready, but select and poll first \
             set up a wait on every fd they scan before the first ready one",
            plan.timeout_ms
        )
    };
    writeln!(
        out,
        "iomux bench selectors: the time of one wait + dispatch (select(timeout) returns the K \
         ready fds, then each one's key is looked up and its data read)"
    )?;
    writeln!(
        out,
        "  fds        N UDP sockets on 127.0.0.1; K of them hold an unread datagram, so they stay \
         readable (level-triggered)"
    )?;
    writeln!(out, "  placement  {placement}")?;
    writeln!(out, "  timeout    {timeout}")?;
    writeln!(
        out,
        "  figures    median time per operation over {} rounds (backends' order rotated each \
         round), [fastest–slowest round]",
        plan.rounds
    )?;
    writeln!(out)?;
    out.flush()
}

fn write_table(
    out: &mut impl Write,
    plan: &Plan,
    points: &[(u32, u32)],
    records: &[Record],
    skipped: &BTreeMap<(BackendKind, u32), String>,
) -> io::Result<()> {
    const CELL: usize = 26;
    let mut line = format!("{:>7} {:>6}  ", "N", "K");
    for backend in &plan.backends {
        let _ = write!(line, "{:<CELL$}", backend.name());
    }
    writeln!(out, "{}", line.trim_end())?;
    for &(fds, active) in points {
        let mut line = format!("{fds:>7} {active:>6}  ");
        for backend in &plan.backends {
            let cell = records
                .iter()
                .find(|record| {
                    record.backend == backend.name() && record.fds == fds && record.active == active
                })
                .map_or_else(
                    || "-".to_owned(),
                    |record| format_range(record.ns_per_op, record.min, record.max),
                );
            let _ = write!(line, "{cell:<CELL$}");
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((backend, fds), reason) in skipped {
        if points.iter().any(|&(n, _)| n == *fds) {
            reasons
                .entry(reason.as_str())
                .or_default()
                .push(format!("{backend} at N={fds}"));
        }
    }
    for (reason, which) in reasons {
        writeln!(out, "  - skipped {}: {reason}", which.join(", "))?;
    }
    let too_many: Vec<String> = plan
        .fds
        .iter()
        .flat_map(|&fds| {
            plan.active
                .iter()
                .filter(move |&&active| active > fds)
                .map(move |&active| format!("K={active} at N={fds}"))
        })
        .collect();
    if !too_many.is_empty() {
        writeln!(
            out,
            "  - skipped {}: more ready fds than registered ones",
            too_many.join(", ")
        )?;
    }
    writeln!(out)
}

/// How each backend's cost grows with N (at the smallest K) and with K (at the largest N): the notes'
/// claim, in numbers.
fn write_growth(out: &mut impl Write, plan: &Plan, records: &[Record]) -> io::Result<()> {
    let find = |backend: &str, fds: u32, active: u32| {
        records
            .iter()
            .find(|r| r.backend == backend && r.fds == fds && r.active == active)
            .map(|r| r.ns_per_op)
    };
    let mut lines = Vec::new();
    for backend in &plan.backends {
        let name = backend.name();
        let mine: Vec<&Record> = records.iter().filter(|r| r.backend == name).collect();
        let mut parts = Vec::new();
        if let Some(k) = mine.iter().map(|r| r.active).min() {
            let ns: Vec<u32> = mine
                .iter()
                .filter(|r| r.active == k)
                .map(|r| r.fds)
                .collect();
            if let (Some(&lo), Some(&hi)) = (ns.iter().min(), ns.iter().max())
                && lo < hi
                && let (Some(a), Some(b)) = (find(name, lo, k), find(name, hi, k))
            {
                parts.push(format!(
                    "{} from N={lo} to N={hi} (K={k})",
                    format_ratio(b / a)
                ));
            }
        }
        if let Some(n) = mine.iter().map(|r| r.fds).max() {
            let ks: Vec<u32> = mine
                .iter()
                .filter(|r| r.fds == n)
                .map(|r| r.active)
                .collect();
            if let (Some(&lo), Some(&hi)) = (ks.iter().min(), ks.iter().max())
                && lo < hi
                && let (Some(a), Some(b)) = (find(name, n, lo), find(name, n, hi))
            {
                parts.push(format!(
                    "{} from K={lo} to K={hi} (N={n})",
                    format_ratio(b / a)
                ));
            }
        }
        if !parts.is_empty() {
            lines.push(format!("  {name:<7} {}", parts.join("; ")));
        }
    }
    if !lines.is_empty() {
        writeln!(
            out,
            "How the cost grows (select and poll scan all N fds on every call; epoll's kernel keeps \
             a list of the ready ones):"
        )?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
        if plan.timeout_ms > 0
            && plan
                .backends
                .iter()
                .any(|backend| matches!(backend, BackendKind::Select | BackendKind::Poll))
        {
            writeln!(
                out,
                "  (select and poll stop setting up waits at the first ready fd they meet, so more \
                 ready fds, --placement start or --timeout 0 make them cheaper)"
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A growth factor: `×1.3`, `×48`.
fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("×{ratio:.0}")
    } else {
        format!("×{ratio:.1}")
    }
}

/// `median [min–max]` in one unit chosen for the median.
fn format_range(median: f64, min: f64, max: f64) -> String {
    let (scale, unit) = if median >= 1e6 {
        (1e6, "ms")
    } else if median >= 1e3 {
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
        digits(median),
        digits(min),
        digits(max)
    )
}

/// The chart: log-log, ns per operation against N, one line per backend and K.
fn draw_chart(path: &Path, plan: &Plan, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        bail!("no measured point to draw");
    }
    let draw_error = |err: &dyn std::fmt::Display| anyhow!("{err}");
    let (lo_n, hi_n) = records.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(f64::from(r.fds)), hi.max(f64::from(r.fds)))
    });
    let (lo_ns, hi_ns) = records.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(r.min), hi.max(r.max))
    });

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let title = "select and poll grow with N, epoll only with K";
    let subtitle = format!(
        "one wait + dispatch, K ready fds placed {}, timeout {} ms, median of {} rounds",
        plan.placement.name(),
        plan.timeout_ms,
        plan.rounds
    );
    let (top, body) = root.split_vertically(64);
    top.draw(&Text::new(
        title,
        (60, 10),
        ("sans-serif", 26).into_font().color(&BLACK),
    ))
    .map_err(|e| draw_error(&e))?;
    top.draw(&Text::new(
        subtitle,
        (60, 42),
        ("sans-serif", 15).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(|e| draw_error(&e))?;

    let mut chart = ChartBuilder::on(&body)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (lo_n * 0.8..hi_n * 1.25).log_scale(),
            (lo_ns * 0.7..hi_ns * 1.5).log_scale(),
        )
        .map_err(|e| draw_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("registered fds (N)")
        .y_desc("time per wait + dispatch")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .x_label_formatter(&|n| format!("{n:.0}"))
        .y_label_formatter(&|ns| format_time(*ns))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| draw_error(&e))?;

    let smallest_k = records.iter().map(|r| r.active).min().unwrap_or(1);
    for (index, backend) in plan.backends.iter().enumerate() {
        let color = backend_color(*backend, index);
        let mut ks: Vec<u32> = records
            .iter()
            .filter(|r| r.backend == backend.name())
            .map(|r| r.active)
            .collect();
        ks.sort_unstable();
        ks.dedup();
        for k in ks {
            let points: Vec<(f64, f64)> = records
                .iter()
                .filter(|r| r.backend == backend.name() && r.active == k)
                .map(|r| (f64::from(r.fds), r.ns_per_op))
                .collect();
            let style = color.stroke_width(2);
            let label = format!("{} K={k}", backend.name());
            let solid = k == smallest_k;
            if solid {
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(|e| draw_error(&e))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&point| Circle::new(point, 4, color.filled())),
                    )
                    .map_err(|e| draw_error(&e))?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
                    .map_err(|e| draw_error(&e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (9, 0)], style)
                            + PathElement::new(vec![(15, 0), (24, 0)], style)
                    });
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&point| TriangleMarker::new(point, 5, color.filled())),
                    )
                    .map_err(|e| draw_error(&e))?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}

/// A fixed color per backend, so charts of different runs compare at a glance.
fn backend_color(backend: BackendKind, index: usize) -> RGBAColor {
    match backend {
        BackendKind::Select => RGBColor(214, 39, 40).to_rgba(),
        BackendKind::Poll => RGBColor(31, 119, 180).to_rgba(),
        BackendKind::Epoll => RGBColor(44, 160, 44).to_rgba(),
        _ => Palette99::pick(index).to_rgba(),
    }
}

/// A time in nanoseconds with a unit, for the chart's axis.
fn format_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.0} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_indices_are_distinct_and_in_range() {
        for placement in [Placement::Start, Placement::Spread, Placement::End] {
            for (fds, active) in [(1, 1), (10, 1), (10, 10), (100, 10), (10_000, 7)] {
                let mut indices = ready_indices(fds, active, placement);
                assert_eq!(indices.len(), active as usize);
                assert!(indices.iter().all(|&index| index < fds));
                indices.dedup();
                assert_eq!(
                    indices.len(),
                    active as usize,
                    "{placement:?} {fds} {active}"
                );
            }
        }
        assert_eq!(ready_indices(100, 2, Placement::Spread), [25, 75]);
        assert_eq!(ready_indices(100, 2, Placement::End), [98, 99]);
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn ranges_share_the_median_unit() {
        assert_eq!(format_range(812.0, 790.0, 1200.0), "812 ns [790–1200]");
        assert_eq!(format_range(1520.0, 1490.0, 1600.0), "1.52 µs [1.49–1.60]");
        assert_eq!(format_range(2.5e6, 2.4e6, 2.6e6), "2.50 ms [2.40–2.60]");
    }
}

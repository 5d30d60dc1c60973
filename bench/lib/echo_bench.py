"""The echo comparison driven by bench/echo.sh (see bench/README.md).

Servers: `iomux echo` for each model and backend (when target/release/iomux has `echo`), the tokio peer in
both flavours, and the seeds' Python selectors server. For every round (servers' order rotated each round)
and every server: start it, then at each connection count run each load generator (`iomux load echo` when the
binary has `load`, and the peers' `echo_load` as the external cross-check) and read the server's CPU time from
/proc around the run; then a second pass measures RSS per idle connection on a freshly started server.
"""

import argparse
import json
import re
import subprocess
import sys
import time

import harness as h
from harness import log

TOKIO_CT = "tokio current_thread"


class Server:
    def __init__(self, name, cmd, holds_idle, why_not_idle=""):
        self.name = name
        self.cmd = cmd
        self.holds_idle = holds_idle
        self.why_not_idle = why_not_idle


class Loader:
    def __init__(self, name, make_cmd):
        self.name = name
        self.make_cmd = make_cmd


def probe(iomux, sub):
    """Whether `iomux SUB --help` works (the subcommand exists in this build)."""
    try:
        done = subprocess.run([iomux, *sub, "--help"], capture_output=True, timeout=20)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def parse_load(text):
    """Messages, messages/s and latencies (µs) from a load generator's JSON, whatever its key names."""
    obj = h.last_json_object(text)
    if obj is None:
        return None
    flat = {k.lower(): v for k, v in h.flatten(obj).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def pick(patterns):
        for pattern in patterns:
            for key, value in flat.items():
                if re.search(pattern, key):
                    return key, value
        return None, None

    def micros(key, value):
        if key is None:
            return None
        if re.search(r"(_ns|nanos|nanoseconds)$", key):
            return value / 1000.0
        if re.search(r"(_ms|millis|milliseconds)$", key):
            return value * 1000.0
        if re.search(r"(_s|_secs|_seconds)$", key):
            return value * 1e6
        return float(value)

    _, messages = pick([r"(^|\.)(messages|msgs|round_?trips|requests|total)$", r"(^|\.)count$"])
    _, rate = pick([r"(messages|msgs|msg)_?(per_?s|per_?sec|per_?second|_s)$", r"per_?sec", r"rate",
                    r"throughput"])
    _, seconds = pick([r"(^|\.)(duration|elapsed|seconds)(_s|_secs|_seconds)?$"])
    if rate is None and messages is not None and seconds:
        rate = messages / seconds
    if messages is None and rate is not None and seconds:
        messages = rate * seconds
    _, errors = pick([r"(^|\.)errors$"])
    return {
        "messages": messages,
        "rate": rate,
        "p50_us": micros(*pick([r"p50", r"median"])),
        "p99_us": micros(*pick([r"p99(?![0-9])"])),
        "max_us": micros(*pick([r"(^|[._])max"])),
        "errors": errors,
    }


def start_server(run, server, tag):
    proc = h.spawn(run, server.cmd, run.raw_name("server", server.name, tag), f"server {server.name} ({tag})",
                   role="server")
    try:
        match = h.wait_first_line(proc, r"tcp://(\S+?)(?:\s|$)")
    except RuntimeError as e:
        h.stop(proc)
        raise RuntimeError(f"{server.name}: {e}") from None
    return proc, match.group(1)


def load_pass(run, opts, server, loaders, rnd):
    try:
        proc, addr = start_server(run, server, f"r{rnd}-load")
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e)
        return
    try:
        for conns in opts.conns:
            for loader in loaders:
                if proc.poll() is not None:
                    log(f"  ! {server.name} exited ({proc.returncode}); restarting it")
                    h.stop(proc)
                    proc, addr = start_server(run, server, f"r{rnd}-c{conns}-restart")
                cmd = loader.make_cmd(addr, conns, opts.duration, opts.size)
                name = run.raw_name("load", server.name, f"r{rnd}", f"c{conns}", loader.name)
                rc, out, err, wall, cpu = h.measured_run(run, proc.pid, cmd, name, f"{loader.name} -> {server.name}",
                                                         timeout=opts.duration + 60)
                parsed = parse_load(out) if rc == 0 else None
                rec = {"kind": "load", "round": rnd, "server": server.name, "conns": conns,
                       "loader": loader.name, "rc": rc, "wall_s": round(wall, 3), "cpu_s": cpu,
                       "raw": name}
                if parsed and parsed["messages"]:
                    rec.update(parsed)
                    rec["cpu_us_per_msg"] = cpu * 1e6 / parsed["messages"]
                    log(f"  {server.name:24} c={conns:<5} {loader.name:10} {h.fmt(parsed['rate']):>9} msg/s  "
                        f"p99 {h.fmt(parsed['p99_us'], 1):>9} µs  CPU {h.fmt(rec['cpu_us_per_msg'], 2)} µs/msg")
                else:
                    rec["error"] = (err.strip().splitlines() or ["no JSON on stdout"])[-1]
                    log(f"  ! {server.name} c={conns} {loader.name}: rc={rc} {rec['error']}")
                run.record(rec)
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e)
    finally:
        h.stop(proc)


def idle_pass(run, opts, server, rnd):
    try:
        proc, addr = start_server(run, server, f"r{rnd}-idle")
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e)
        return
    try:
        rec = h.measure_idle(run, rnd, server.name, proc.pid, addr, opts.idle, ["--echo", opts.size])
        log(f"  {server.name:24} idle {rec['opened']}/{opts.idle}: RSS {rec['rss_before_kib']} -> "
            f"{rec['rss_after_kib']} KiB, {h.fmt(rec['bytes_per_conn'])} B/conn")
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e, "idle")
    finally:
        h.stop(proc)


def idle_section(opts, servers, idles):
    md = [f"\n## Memory per idle connection ({opts.idle:,} idle connections)\n\n",
          "Each connection did one echo round trip, then idles; RSS (VmRSS) of the freshly started server "
          "before opening them and once all are open.\n\n"]
    ref = h.stats([r["bytes_per_conn"] for r in idles if r["server"] == TOKIO_CT])
    rows = []
    for server in servers:
        these = [r for r in idles if r["server"] == server.name]
        if not these:
            if not server.holds_idle:
                rows.append([server.name, "—", "—", f"not measured: {server.why_not_idle}", "—", "—"])
            continue
        per = h.stats([r["bytes_per_conn"] for r in these])
        rows.append([server.name, h.fmt_stats(h.stats([r["rss_before_kib"] for r in these])),
                     h.fmt_stats(h.stats([r["rss_after_kib"] for r in these])), h.fmt_stats(per),
                     h.ratio(per[0], ref and ref[0]), min(r["opened"] for r in these)])
    md.append(h.table(["server", "RSS before KiB", "RSS after KiB", "bytes per idle connection",
                       f"× {TOKIO_CT}", "connections held (min)"], rows))
    return "".join(md)


def summarise(run, opts, facts, servers, loaders, skipped, argv):
    records = [json.loads(line) for line in (run.dir / "runs.jsonl").read_text().splitlines()]
    loads = [r for r in records if r["kind"] == "load" and r.get("messages")]
    idles = [r for r in records if r["kind"] == "idle" and r.get("bytes_per_conn") is not None]
    errors = [r for r in records if r["kind"] == "error" or (r["kind"] == "load" and not r.get("messages"))]

    def pick(server, conns, loader, field):
        return h.stats([r.get(field) for r in loads
                        if r["server"] == server and r["conns"] == conns and r["loader"] == loader])

    md = [f"# Echo benchmark: {facts['date']} on {facts['host']}\n",
          f"Command: `bench/echo.sh {' '.join(argv)}` — {opts.rounds} round(s) of {opts.duration} s per point, "
          f"messages of {opts.size} bytes, servers' order rotated each round; figures are medians with "
          f"(min–max) over the rounds. Ratios are against {TOKIO_CT} (messages/s: higher is better; "
          "CPU per message: lower is better).\n",
          "Machine: " + f"{facts['nproc']} CPUs ({facts['cpu']}), kernel {facts['kernel']}, "
          f"load average at start {facts['loadavg at start']}. Nothing pinned: servers and load generators "
          "share the cores, and on a shared machine messages/s mostly measures the CPU share the server got; "
          "server CPU time per message (utime + stime from /proc/PID/stat over the run) is the steady "
          "figure.\n"]
    if skipped:
        md.append("Skipped: " + "; ".join(skipped) + ".\n")
    names = [s.name for s in servers]
    for loader in loaders:
        md.append(f"\n## Load generator: {loader.name}\n")
        for conns in opts.conns:
            ref_rate = pick(TOKIO_CT, conns, loader.name, "rate")
            ref_cpu = pick(TOKIO_CT, conns, loader.name, "cpu_us_per_msg")
            rows = []
            for name in names:
                rate = pick(name, conns, loader.name, "rate")
                cpu = pick(name, conns, loader.name, "cpu_us_per_msg")
                if rate is None:
                    continue
                errs = sum(int(r.get("errors") or 0) for r in loads
                           if r["server"] == name and r["conns"] == conns and r["loader"] == loader.name)
                rows.append([name, h.fmt_stats(rate), h.ratio(rate[0], ref_rate and ref_rate[0]),
                             h.fmt_stats(pick(name, conns, loader.name, "p50_us"), 1),
                             h.fmt_stats(pick(name, conns, loader.name, "p99_us"), 1),
                             h.fmt_stats(cpu, 2), h.ratio(cpu and cpu[0], ref_cpu and ref_cpu[0]), errs])
            md.append(f"\n### {conns} connection{'s' if conns != 1 else ''}\n\n")
            md.append(h.table(["server", "messages/s", f"× {TOKIO_CT}", "p50 µs", "p99 µs", "CPU µs/message",
                               f"× {TOKIO_CT}", "errors"], rows))
    if len(loaders) > 1:
        md.append("\n## Cross-check: messages/s by each load generator (medians)\n\n")
        rows = []
        for name in names:
            row = [name]
            for conns in opts.conns:
                cells = [pick(name, conns, l.name, "rate") for l in loaders]
                row.append(" / ".join(h.fmt(c and c[0]) for c in cells))
            rows.append(row)
        md.append(f"Each cell: {' / '.join(l.name for l in loaders)}.\n\n")
        md.append(h.table(["server"] + [f"{c} conn" for c in opts.conns], rows))
    if not opts.no_idle:
        md.append(idle_section(opts, servers, idles))
    if errors:
        md.append(f"\n## Failures ({len(errors)})\n\n")
        for r in errors[:30]:
            md.append(f"- round {r.get('round')}, {r.get('server')}"
                      f"{', ' + str(r['conns']) + ' conns' if 'conns' in r else ''}"
                      f"{', ' + r['loader'] if 'loader' in r else ''}: {r.get('error', 'no result')}\n")
    md.append(f"\nRaw output, commands and machine facts: `{run.shown()}/`.\n")
    text = "".join(md)
    run.write("summary.md", text)
    return text


def main():
    ap = argparse.ArgumentParser(prog="bench/echo.sh", description="echo servers side by side (see bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s per point, 2,000 idle connections")
    ap.add_argument("--rounds", type=int, help="rounds (default 5; quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per load run (default 4; quick 1)")
    ap.add_argument("--conns", default="1,64,1000", help="connection counts (default 1,64,1000)")
    ap.add_argument("--size", type=int, default=64, help="message bytes (default 64)")
    ap.add_argument("--idle", type=int, help="idle connections for the memory test (default 10000; quick 2000)")
    ap.add_argument("--servers", help="comma-separated substrings; run only servers whose name contains one")
    ap.add_argument("--no-cross-check", action="store_true", help="only the first load generator")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-connection memory test")
    ap.add_argument("--pin", help="SERVER_CPUS:LOAD_CPUS, e.g. 0:1: run servers and load generators under "
                                  "taskset (default: nothing pinned)")
    ap.add_argument("--iomux", default=str(h.REPO_ROOT / "target" / "release" / "iomux"), help="iomux binary")
    ap.add_argument("--build", action="store_true", help="build target/release/iomux first (done by echo.sh)")
    ap.add_argument("--out", help="results directory (default bench/results/<date>-<host>/echo[-quick])")
    ap.add_argument("--argv", default="", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    opts.rounds = opts.rounds or (1 if opts.quick else 5)
    opts.duration = opts.duration or (1 if opts.quick else 4)
    opts.idle = opts.idle or (2000 if opts.quick else 10000)
    opts.conns = [int(c) for c in opts.conns.split(",") if c]
    if opts.rounds < 1 or opts.duration < 1 or not opts.conns or min(opts.conns) < 1 or opts.idle < 1:
        ap.error("rounds, duration, connection counts and idle count must be positive")
    if opts.idle > 18000 or max(opts.conns) > 18000:
        ap.error("at most 18,000 connections: processes here may hold 20,000 open files")

    if opts.pin:
        try:
            h.set_pinning(opts.pin)
        except ValueError as e:
            ap.error(str(e))
    skipped = []
    has_echo = h.Path(opts.iomux).is_file() and probe(opts.iomux, ["echo"])
    has_load = h.Path(opts.iomux).is_file() and probe(opts.iomux, ["load"])
    if not has_echo:
        skipped.append(f"iomux echo ({opts.iomux} missing or without `echo`)")
    if not has_load:
        skipped.append(f"iomux load ({opts.iomux} missing or without `load`); echo_load is the only load generator")

    servers = []
    if has_echo:
        for model in ("callback", "coroutine"):
            for backend in ("select", "poll", "epoll"):
                servers.append(Server(f"iomux {model} {backend}",
                                      [opts.iomux, "echo", "--port", "0", "--model", model, "--backend", backend,
                                       "--workers", "1"],
                                      holds_idle=backend != "select",
                                      why_not_idle="select holds fds below FD_SETSIZE (1024) only"))
        servers.append(Server("iomux threads", [opts.iomux, "echo", "--port", "0", "--model", "threads"],
                              holds_idle=False, why_not_idle="one thread per connection; measured only for poll "
                                                             "and epoll"))
    servers.append(Server(TOKIO_CT, [h.PEERS_BIN / "tokio_echo", "--flavor", "current_thread", "--port", "0"], True))
    servers.append(Server("tokio multi_thread", [h.PEERS_BIN / "tokio_echo", "--flavor", "multi_thread", "--port",
                                                 "0"], True))
    servers.append(Server("python selectors", [sys.executable, h.PEERS_DIR / "selectors_echo.py", "0"], True))
    if opts.servers:
        wanted = [w.strip() for w in opts.servers.split(",") if w.strip()]
        servers = [s for s in servers if any(w in s.name for w in wanted)]
        if not servers:
            ap.error(f"no server matches {opts.servers!r}")

    loaders = []
    if has_load:
        loaders.append(Loader("iomux load", lambda addr, c, d, size: [
            opts.iomux, "load", "echo", addr, "-c", c, "-d", d, "--size", size, "--json"]))
    if not has_load or not opts.no_cross_check:
        loaders.append(Loader("echo_load", lambda addr, c, d, size: [
            h.PEERS_BIN / "echo_load", addr, "-c", c, "-d", d, "--size", size, "--json"]))

    run = h.Run("echo", opts.out, opts.quick)
    tools = {"tokio (bench/peers/Cargo.lock)": ["echo", h.tokio_version()]}
    if has_echo or has_load:
        tools["iomux"] = [opts.iomux, "--version"]
    facts = h.machine_facts(tools)
    run.write("machine.md", "# Machine\n\n" + h.facts_markdown(facts))
    estimate = opts.rounds * len(servers) * len(opts.conns) * len(loaders) * (opts.duration + 0.7)
    log(f"echo bench: {len(servers)} servers × {len(opts.conns)} points × {len(loaders)} load generator(s) × "
        f"{opts.rounds} rounds, about {estimate / 60:.1f} min + the idle test; results in {run.dir}")
    for note in skipped:
        log(f"  note: skipped {note}")

    for rnd in range(opts.rounds):
        order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
        log(f"round {rnd + 1}/{opts.rounds}: {', '.join(s.name for s in order)}")
        for server in order:
            load_pass(run, opts, server, loaders, rnd)
        if not opts.no_idle:
            for server in order:
                if server.holds_idle:
                    idle_pass(run, opts, server, rnd)

    facts["loadavg at end"] = h.Path("/proc/loadavg").read_text().strip()
    run.write("machine.md", "# Machine\n\n" + h.facts_markdown(facts))
    text = summarise(run, opts, facts, servers, loaders, skipped, opts.argv.split())
    print(text)
    log(f"results: {run.dir}")


if __name__ == "__main__":
    main()

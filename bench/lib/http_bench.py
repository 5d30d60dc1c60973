"""The HTTP comparison driven by bench/http.sh (see bench/README.md).

Servers: nginx, h2o and lighttpd from Debian's packages with the configs in bench/peers/conf/ (rendered into
a temp dir, run in the foreground as the current user), and `iomux http` when target/release/iomux has
`http`. A temp document root holds 1k.bin, 100k.bin and 10m.bin. For every round (servers' order rotated
each round) and every server: start it, run wrk at each point and read the server's CPU time from /proc
around the run; then a pass measures RSS per idle keep-alive connection on a freshly started server. Last,
once per server, `strace -c -f` counts system calls over a fixed number of keep-alive requests.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness as h
from harness import log

POINTS = [("1k.bin", 64), ("1k.bin", 512), ("100k.bin", 16), ("10m.bin", 16)]
FILES = {"1k.bin": 1024, "100k.bin": 100 * 1024, "10m.bin": 10 * 1024 * 1024}
PEERS = ("nginx", "h2o", "lighttpd")
STRACE_PATH = "/1k.bin"


class Server:
    """One HTTP server: how to start it on a document root and learn its port."""

    def __init__(self, name, iomux=None, iomux_extra=()):
        self.name = name
        self.iomux = iomux
        self.iomux_extra = list(iomux_extra)

    def start(self, run, opts, tmp, root, tag):
        """Starts the server; returns (proc, port). Config-file servers get a fresh free port, retried."""
        name = run.raw_name("server", self.name, tag)
        if self.iomux:
            cmd = [self.iomux, "http", root, "--port", "0", "--quiet", "--workers", opts.workers, *self.iomux_extra]
            proc = h.spawn(run, cmd, name, f"server {self.name} ({tag})", role="server")
            try:
                match = h.wait_first_line(proc, r"http://[^\s/]*:(\d+)/")
                port = int(match.group(1))
                check(port)
            except (RuntimeError, OSError, http.client.HTTPException) as e:
                h.stop(proc)
                raise RuntimeError(f"{self.name}: {e}") from None
            return proc, port
        last_error = None
        for _ in range(3):
            port = h.free_port()
            workdir = tempfile.mkdtemp(prefix=f"{self.name}-{tag}-", dir=tmp)
            conf = os.path.join(workdir, f"{self.name}.conf")
            render(h.PEERS_DIR / "conf" / f"{self.name}.conf", conf, port=port, root=root, tmp=workdir,
                   workers=opts.workers)
            shutil.copy(conf, run.raw / f"{name}.conf.txt")
            if self.name == "nginx":
                cmd = ["nginx", "-e", os.path.join(workdir, "nginx-error.txt"), "-p", workdir + "/", "-c", conf]
            elif self.name == "h2o":
                cmd = ["h2o", "-c", conf]
            else:
                cmd = ["lighttpd", "-D", "-f", conf]
            proc = h.spawn(run, cmd, name, f"server {self.name} ({tag}), config {conf}", role="server")
            try:
                h.wait_port(proc, port)
                check(port)
                proc.workdir = workdir
                return proc, port
            except (RuntimeError, OSError, http.client.HTTPException) as e:
                last_error = e
                h.stop(proc)
                keep_error_logs(run, workdir, name)
        raise RuntimeError(f"{self.name}: {last_error}")


def render(template, dest, port, root, tmp, workers):
    """Fills a config template's @NAME@ fields."""
    root_user = os.geteuid() == 0
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    values = {
        "PORT": str(port), "ROOT": root, "TMP": tmp, "WORKERS": str(workers),
        "NGINX_USER": f"user {user} {group};" if root_user else "# (not root: nginx runs as the current user)",
        "H2O_USER": f"user: {user}" if root_user else "# (not root: h2o runs as the current user)",
        "MAX_WORKER": (f"server.max-worker = {workers}  # BENCH: equal workers (default 0: one process)"
                       if workers > 1 else "# server.max-worker not set: one process, as Debian's default"),
    }
    text = open(template, encoding="utf-8").read()
    text = re.sub(r"@([A-Z0-9_]+)@", lambda m: values[m.group(1)], text)
    with open(dest, "w", encoding="utf-8") as f:
        f.write(text)


def keep_error_logs(run, workdir, name):
    for entry in os.listdir(workdir):
        if "error" in entry:
            shutil.copy(os.path.join(workdir, entry), run.raw / f"{name}.{entry}")


def check(port):
    """Two keep-alive GETs of 1k.bin on one connection must give 200 with 1024 bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/1k.bin")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or len(body) != 1024:
                raise RuntimeError(f"GET /1k.bin gave {resp.status} with {len(body)} bytes")
    finally:
        conn.close()


def stop_server(run, proc, name):
    h.stop(proc)
    workdir = getattr(proc, "workdir", None)
    if workdir and os.path.isdir(workdir):
        keep_error_logs(run, workdir, name)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text):
    """Requests, seconds, requests/s, p50/p99 (ms) and error counts from `wrk --latency` output."""
    def number(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None

    def latency(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else None

    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": int(m.group(1)),
        "seconds": float(m.group(2)) * UNITS[m.group(3)] / 1e3,
        "rate": number(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "non_2xx_3xx": int(number(r"Non-2xx or 3xx responses:\s+(\d+)") or 0),
    }


def load_pass(run, opts, server, tmp, root, rnd):
    tag = f"r{rnd}-load"
    try:
        proc, port = server.start(run, opts, tmp, root, tag)
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e)
        return
    try:
        for path, conns in POINTS:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited ({proc.returncode})")
            cmd = ["wrk", "--latency", "-t1", f"-c{conns}", f"-d{opts.duration}s",
                   f"http://127.0.0.1:{port}/{path}"]
            name = run.raw_name("wrk", server.name, f"r{rnd}", path, f"c{conns}")
            rc, out, err, wall, cpu = h.measured_run(run, proc.pid, cmd, name, f"wrk -> {server.name}",
                                                     timeout=opts.duration + 60)
            parsed = parse_wrk(out) if rc == 0 else None
            rec = {"kind": "load", "round": rnd, "server": server.name, "path": path, "conns": conns, "rc": rc,
                   "wall_s": round(wall, 3), "cpu_s": cpu, "raw": name}
            if parsed and parsed["requests"]:
                rec.update(parsed)
                rec["cpu_us_per_req"] = cpu * 1e6 / parsed["requests"]
                bad = parsed["socket_errors"] + parsed["non_2xx_3xx"]
                log(f"  {server.name:9} {path:8} c={conns:<4} {h.fmt(parsed['rate']):>9} req/s  "
                    f"p99 {h.fmt(parsed['p99_ms'], 2):>8} ms  CPU {h.fmt(rec['cpu_us_per_req'], 2):>6} µs/req"
                    + (f"  ({bad} errors)" if bad else ""))
            else:
                rec["error"] = (err.strip().splitlines() or ["no wrk summary"])[-1]
                log(f"  ! {server.name} {path} c={conns}: rc={rc} {rec['error']}")
            run.record(rec)
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e)
    finally:
        stop_server(run, proc, run.raw_name("server", server.name, tag))


def idle_pass(run, opts, server, tmp, root, rnd):
    tag = f"r{rnd}-idle"
    try:
        proc, port = server.start(run, opts, tmp, root, tag)
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e, "idle")
        return
    try:
        rec = h.measure_idle(run, rnd, server.name, proc.pid, f"127.0.0.1:{port}", opts.idle, ["--http", "/1k.bin"])
        failed = rec["failed"]
        log(f"  {server.name:9} idle {rec['opened']}/{opts.idle}: RSS {rec['rss_before_kib']} -> "
            f"{rec['rss_after_kib']} KiB, {h.fmt(rec['bytes_per_conn'])} B/conn"
            + (f" ({failed} failed)" if failed else ""))
    except RuntimeError as e:
        h.record_error(run, rnd, server.name, e, "idle")
    finally:
        stop_server(run, proc, run.raw_name("server", server.name, tag))


def parse_strace(text):
    """{syscall: calls} from `strace -c` output."""
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) in (5, 6) and re.fullmatch(r"[\d.]+", parts[0]) and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    return calls


def strace_pass(run, opts, server, tmp, root):
    tag = "strace"
    try:
        proc, port = server.start(run, opts, tmp, root, tag)
    except RuntimeError as e:
        log(f"  ! {e}")
        run.record({"kind": "error", "server": server.name, "error": f"strace: {e}"})
        return
    tracer = None
    try:
        addr = f"127.0.0.1:{port}"
        client = [h.PEERS_BIN / "http_fixed", addr, "--path", STRACE_PATH, "-c", opts.strace_conns]
        warm = run.raw_name("strace", server.name, "warmup")
        h.run_to_end(run, client + ["-n", 1000], warm, f"warm-up -> {server.name}", timeout=60)
        pids = h.group_pids(proc.pid)
        out_file = run.raw / f"{run.raw_name('strace', server.name)}.strace.txt"
        cmd = ["strace", "-c", "-f", "-o", out_file]
        for pid in pids:
            cmd += ["-p", pid]
        name = run.raw_name("strace", server.name, "tracer")
        tracer = h.spawn(run, cmd, name, f"strace on {server.name} (pids {pids})", role="tool")
        deadline = time.time() + 15
        while "attached" not in h.tail(tracer.err_path, 1 << 16) and time.time() < deadline:
            if tracer.poll() is not None:
                raise RuntimeError(f"strace exited: {h.tail(tracer.err_path, 2000).strip()}")
            time.sleep(0.05)
        time.sleep(0.5)
        fixed = run.raw_name("strace", server.name, "client")
        rc, out, err, wall = h.run_to_end(run, client + ["-n", opts.strace_requests], fixed,
                                          f"fixed-count client -> {server.name} (traced)", timeout=300)
        time.sleep(0.3)
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            h.stop(tracer)
        result = h.last_json_object(out) if rc == 0 else None
        if not result:
            raise RuntimeError(f"fixed-count client failed (rc={rc}): {err.strip()[-300:]}")
        calls = parse_strace(out_file.read_text(errors="replace"))
        if not calls:
            raise RuntimeError(f"no strace summary in {out_file.name}")
        run.record({"kind": "strace", "server": server.name, "requests": result["requests"],
                    "reconnects": result.get("reconnects"), "not_200": result.get("not_200"), "calls": calls,
                    "pids": pids, "raw": out_file.name})
        per = sum(calls.values()) / result["requests"]
        log(f"  {server.name:9} strace: {per:.2f} syscalls/request over {result['requests']} requests "
            f"(reconnects {result.get('reconnects')})")
    except RuntimeError as e:
        log(f"  ! {server.name} strace: {e}")
        run.record({"kind": "error", "server": server.name, "error": f"strace: {e}"})
    finally:
        if tracer is not None and tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)
            try:
                tracer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            h.stop(tracer)
        stop_server(run, proc, run.raw_name("server", server.name, tag))


def summarise(run, opts, facts, servers, skipped, argv):
    records = [json.loads(line) for line in (run.dir / "runs.jsonl").read_text().splitlines()]
    loads = [r for r in records if r["kind"] == "load" and r.get("requests")]
    idles = [r for r in records if r["kind"] == "idle" and r.get("bytes_per_conn") is not None]
    straces = {r["server"]: r for r in records if r["kind"] == "strace"}
    errors = [r for r in records if r["kind"] == "error" or (r["kind"] == "load" and not r.get("requests"))]
    names = [s.name for s in servers]
    peers = [n for n in names if n in PEERS]

    def pick(server, path, conns, field):
        return h.stats([r.get(field) for r in loads
                        if r["server"] == server and r["path"] == path and r["conns"] == conns])

    md = [f"# HTTP benchmark: {facts['date']} on {facts['host']}\n\n",
          f"Command: `bench/http.sh {' '.join(argv)}` — {opts.rounds} round(s) of `wrk --latency -t1 -cC "
          f"-d{opts.duration}s` per point, {opts.workers} worker(s) for every server, access logs off, keep-alive; "
          "servers' order rotated each round; figures are medians with (min–max) over the rounds. "
          "Ratios are against the best peer at each point for that column (highest requests/s, lowest p99, "
          "lowest CPU per request).\n\n",
          f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), kernel {facts['kernel']}, load average at start "
          f"{facts['loadavg at start']}. Nothing pinned: servers and wrk share the cores, and on a shared "
          "machine requests/s mostly measures the CPU share the server got; server CPU time per request "
          "(utime + stime from /proc/PID/stat of every process of the server over the run) is the steady "
          "figure.\n\n"]
    if skipped:
        md.append("Skipped: " + "; ".join(skipped) + ".\n\n")
    for path, conns in POINTS:
        rates = {n: pick(n, path, conns, "rate") for n in names}
        p99s = {n: pick(n, path, conns, "p99_ms") for n in names}
        cpus = {n: pick(n, path, conns, "cpu_us_per_req") for n in names}
        best_rate = max((rates[p][0], p) for p in peers if rates[p]) if any(rates[p] for p in peers) else None
        best_p99 = min((p99s[p][0], p) for p in peers if p99s[p]) if any(p99s[p] for p in peers) else None
        best_cpu = min((cpus[p][0], p) for p in peers if cpus[p]) if any(cpus[p] for p in peers) else None
        rows = []
        for n in names:
            if not rates[n]:
                continue
            errs = sum(r.get("socket_errors", 0) + r.get("non_2xx_3xx", 0) for r in loads
                       if r["server"] == n and r["path"] == path and r["conns"] == conns)
            rows.append([n, h.fmt_stats(rates[n]), h.ratio(rates[n][0], best_rate and best_rate[0]),
                         h.fmt_stats(p99s[n], 2), h.ratio(p99s[n] and p99s[n][0], best_p99 and best_p99[0]),
                         h.fmt_stats(cpus[n], 2), h.ratio(cpus[n] and cpus[n][0], best_cpu and best_cpu[0]),
                         errs])
        md.append(f"## {path} ({h.fmt(FILES[path] / 1024)} KiB), {conns} connections\n\n")
        if best_rate:
            md.append(f"Best peer: {best_rate[1]} (requests/s), {best_p99[1]} (p99), {best_cpu[1]} (CPU).\n\n")
        md.append(h.table(["server", "requests/s", "× best", "p99 ms", "× best", "CPU µs/request", "× best",
                           "errors"], rows))
        md.append("\n")
    if not opts.no_idle:
        md.append(f"## Memory per idle keep-alive connection ({opts.idle:,} connections)\n\n")
        md.append("Each connection sent one GET /1k.bin and read the response, then idles (keep-alive); RSS "
                  "(VmRSS summed over the server's processes) of the freshly started server before opening them and "
                  "once all are open.\n\n")
        ref = h.stats([r["bytes_per_conn"] for r in idles if r["server"] == "nginx"])
        rows = []
        for n in names:
            these = [r for r in idles if r["server"] == n]
            if not these:
                continue
            per = h.stats([r["bytes_per_conn"] for r in these])
            rows.append([n, h.fmt_stats(h.stats([r["rss_before_kib"] for r in these])),
                         h.fmt_stats(h.stats([r["rss_after_kib"] for r in these])), h.fmt_stats(per),
                         h.ratio(per[0], ref and ref[0]), min(r["opened"] for r in these)])
        md.append(h.table(["server", "RSS before KiB", "RSS after KiB", "bytes per idle connection", "× nginx",
                           "connections held (min)"], rows))
    if straces:
        order = [n for n in names if n in straces]
        md.append("\n## System calls per keep-alive request (strace -c -f)\n\n")
        md.append(f"`http_fixed` sent {opts.strace_requests:,} GET {STRACE_PATH} over {opts.strace_conns} "
                  "keep-alive connections (after a 1,000-request warm-up) while `strace -c -f -p PID…` was "
                  "attached to every process of the server; calls per request by name (≥ 0.01 shown).\n\n")
        totals = {n: {k: v / straces[n]["requests"] for k, v in straces[n]["calls"].items()} for n in order}
        names_all = sorted({k for n in order for k in totals[n]},
                           key=lambda k: -max(totals[n].get(k, 0) for n in order))
        rows = [[k] + [f"{totals[n][k]:.2f}" if totals[n].get(k, 0) >= 0.005 else "" for n in order]
                for k in names_all if max(totals[n].get(k, 0) for n in order) >= 0.005]
        rows.append(["**total**"] + [f"**{sum(totals[n].values()):.2f}**" for n in order])
        rows.append(["reconnects"] + [str(straces[n].get("reconnects")) for n in order])
        md.append(h.table(["syscall"] + order, rows))
    if errors:
        md.append(f"\n## Failures ({len(errors)})\n\n")
        for r in errors[:30]:
            md.append(f"- round {r.get('round', '-')}, {r.get('server')}"
                      f"{', ' + r['path'] + ' c=' + str(r['conns']) if 'path' in r else ''}: "
                      f"{r.get('error', 'no result')}\n")
    md.append(f"\nRaw output, rendered configs, commands and machine facts: "
              f"`{run.shown()}/`.\n")
    text = "".join(md)
    run.write("summary.md", text)
    return text


def add_iomux(servers, skipped, name, binary):
    """Appends the server `name` running `binary http` if that binary has `http`; returns whether it did."""
    done = None
    if os.path.isfile(binary):
        try:
            done = subprocess.run([binary, "http", "--help"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            done = None
    if done is None or done.returncode != 0:
        skipped.append(f"{name} http ({binary} missing or without `http`)")
        return False
    extra = ["--keepalive-timeout", "600"] if "--keepalive-timeout" in done.stdout else []
    servers.append(Server(name, iomux=binary, iomux_extra=extra))
    return True


def main():
    ap = argparse.ArgumentParser(prog="bench/http.sh", description="static file servers side by side "
                                                                   "(see bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s per point, 2,000 idle "
                                                         "connections, 5,000 traced requests")
    ap.add_argument("--rounds", type=int, help="rounds (default 5; quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5; quick 2)")
    ap.add_argument("--workers", type=int, default=1, help="workers/threads of every server (default 1)")
    ap.add_argument("--idle", type=int, help="idle keep-alive connections (default 10000; quick 2000)")
    ap.add_argument("--strace-requests", type=int, help="traced requests (default 20000; quick 5000)")
    ap.add_argument("--strace-conns", type=int, default=8, help="traced keep-alive connections (default 8)")
    ap.add_argument("--no-strace", action="store_true", help="skip the syscall counts")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-connection memory test")
    ap.add_argument("--servers", help="comma-separated names (nginx,h2o,lighttpd,iomux); default all")
    ap.add_argument("--pin", help="SERVER_CPUS:LOAD_CPUS, e.g. 0:1: run servers and clients under taskset "
                                  "(default: nothing pinned)")
    ap.add_argument("--iomux", default=str(h.REPO_ROOT / "target" / "release" / "iomux"), help="iomux binary")
    ap.add_argument("--iomux-baseline", help="a second iomux binary (e.g. an older build), run in the same rounds "
                                             "as the server `iomux-baseline` for before/after figures")
    ap.add_argument("--build", action="store_true", help="build target/release/iomux first (done by http.sh)")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install (done by http.sh)")
    ap.add_argument("--out", help="results directory (default bench/results/<date>-<host>/http[-quick])")
    ap.add_argument("--argv", default="", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    opts.rounds = opts.rounds or (1 if opts.quick else 5)
    opts.duration = opts.duration or (2 if opts.quick else 5)
    opts.idle = opts.idle or (2000 if opts.quick else 10000)
    opts.strace_requests = opts.strace_requests or (5000 if opts.quick else 20000)
    if min(opts.rounds, opts.duration, opts.workers, opts.idle, opts.strace_conns) < 1:
        ap.error("rounds, duration, workers, idle and strace connections must be positive")
    if opts.idle > 10000:
        ap.error("at most 10,000 idle connections (lighttpd holds max-fds / 2 = 10,000)")
    if opts.strace_requests < opts.strace_conns:
        ap.error("--strace-requests must be at least --strace-conns")

    if opts.pin:
        try:
            h.set_pinning(opts.pin)
        except ValueError as e:
            ap.error(str(e))
    skipped = []
    servers = [Server(p) for p in PEERS if shutil.which(p)]
    skipped += [f"{p} (not installed)" for p in PEERS if not shutil.which(p)]
    iomux_ok = add_iomux(servers, skipped, "iomux", opts.iomux)
    baseline_ok = opts.iomux_baseline and add_iomux(servers, skipped, "iomux-baseline", opts.iomux_baseline)
    if opts.servers:
        wanted = {w.strip() for w in opts.servers.split(",") if w.strip()}
        servers = [s for s in servers if s.name in wanted]
        if not servers:
            ap.error(f"no available server among {opts.servers!r}")
    for tool in ["wrk"] + ([] if opts.no_strace else ["strace"]):
        if not shutil.which(tool):
            ap.error(f"{tool} is not installed (bench/http.sh installs it from Debian's packages)")

    run = h.Run("http", opts.out, opts.quick)
    tools = {"nginx": ["nginx", "-v"], "h2o": ["h2o", "--version"], "lighttpd": ["lighttpd", "-v"],
             "wrk": ["wrk", "--version"], "strace": ["strace", "-V"]}
    if iomux_ok:
        tools["iomux"] = [opts.iomux, "--version"]
    if baseline_ok:
        tools["iomux-baseline"] = [opts.iomux_baseline, "--version"]
    facts = h.machine_facts(tools)
    run.write("machine.md", "# Machine\n\n" + h.facts_markdown(facts))
    estimate = opts.rounds * len(servers) * len(POINTS) * (opts.duration + 0.5)
    log(f"http bench: {len(servers)} servers × {len(POINTS)} points × {opts.rounds} rounds, about "
        f"{estimate / 60:.1f} min + the idle and strace passes; results in {run.dir}")
    for note in skipped:
        log(f"  note: skipped {note}")

    tmp = tempfile.mkdtemp(prefix="iomux-bench-http-")
    try:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        for name, size in FILES.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(os.urandom(size))
        run.log_command(["(document root)", root] + [f"{n}={s}B" for n, s in FILES.items()], "temp document root")
        for rnd in range(opts.rounds):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            log(f"round {rnd + 1}/{opts.rounds}: {', '.join(s.name for s in order)}")
            for server in order:
                load_pass(run, opts, server, tmp, root, rnd)
            if not opts.no_idle:
                for server in order:
                    idle_pass(run, opts, server, tmp, root, rnd)
        if not opts.no_strace:
            log("syscalls per request:")
            for server in servers:
                strace_pass(run, opts, server, tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    facts["loadavg at end"] = h.Path("/proc/loadavg").read_text().strip()
    run.write("machine.md", "# Machine\n\n" + h.facts_markdown(facts))
    text = summarise(run, opts, facts, servers, skipped, opts.argv.split())
    print(text)
    log(f"results: {run.dir}")


if __name__ == "__main__":
    main()

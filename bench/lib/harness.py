"""Shared machinery of bench/echo.sh and bench/http.sh (standard library only).

- Run: one results directory (bench/results/<date>-<host>/<kind>/): commands.txt (every command, exactly as
  run), runs.jsonl (one record per measurement), raw/ (every process's stdout and stderr), machine.md,
  summary.md.
- Processes: every server and client is started in its own session (its pgid is its pid) and remembered;
  stop() and the exit handler end them by that pid / process group only, never by name.
- /proc readings: CPU seconds (utime + stime, which /proc/PID/stat sums over all threads of a process) and
  VmRSS, summed over every process of a server's process group (nginx's master and workers, h2o's helper).
- Statistics and Markdown tables.
"""

import atexit
import json
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
PEERS_BIN = PEERS_DIR / "target" / "release"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_live = {}  # pid -> Popen of every process we started and have not stopped yet
PIN = {}  # role ("server" / "load") -> taskset CPU list; empty: nothing pinned (the default)


def log(message):
    """Progress line on stderr (stdout carries the final Markdown summary)."""
    print(message, file=sys.stderr, flush=True)


def _cleanup():
    for proc in list(_live.values()):
        stop(proc, timeout=2)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


atexit.register(_cleanup)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


class Run:
    """One benchmark run's output directory and logs."""

    def __init__(self, kind, out=None, quick=False):
        date = time.strftime("%Y-%m-%d")
        host = socket.gethostname().split(".")[0]
        base = Path(out) if out else BENCH_DIR / "results" / f"{date}-{host}" / (kind + ("-quick" if quick else ""))
        path, n = base, 1
        while path.exists():  # never overwrite an earlier run
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        self.dir = path
        self.raw = path / "raw"
        self.raw.mkdir(parents=True)
        self.started = time.time()
        self._commands = open(path / "commands.txt", "a", encoding="utf-8")
        self._records = open(path / "runs.jsonl", "a", encoding="utf-8")
        self.log_command([sys.executable] + sys.argv, "this run (driver started by the bench script)")

    def log_command(self, cmd, note):
        stamp = time.strftime("%H:%M:%S")
        self._commands.write(f"[{stamp}] {note}\n    {shlex.join(str(c) for c in cmd)}\n")
        self._commands.flush()

    def record(self, rec):
        rec = dict(rec, t=round(time.time() - self.started, 3))
        self._records.write(json.dumps(rec, sort_keys=True) + "\n")
        self._records.flush()

    def write(self, name, text):
        (self.dir / name).write_text(text, encoding="utf-8")

    def shown(self):
        """The results directory, relative to the repository when inside it."""
        try:
            return str(self.dir.resolve().relative_to(REPO_ROOT))
        except ValueError:
            return str(self.dir)

    def raw_name(self, *parts):
        """A file-name-safe stem for raw output."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(str(p) for p in parts)).strip("-")


# ---------------------------------------------------------------------------------------------- processes


def set_pinning(spec):
    """`--pin SERVER_CPUS:LOAD_CPUS` (taskset lists, e.g. 0:1); raises ValueError on a bad spec."""
    match = re.fullmatch(r"([0-9][0-9,-]*):([0-9][0-9,-]*)", spec)
    if not match:
        raise ValueError(f"--pin wants SERVER_CPUS:LOAD_CPUS (e.g. 0:1), not {spec!r}")
    PIN["server"], PIN["load"] = match.groups()


def spawn(run, cmd, name, note, stdin=subprocess.DEVNULL, cwd=None, role="load"):
    """Starts `cmd` in its own session, stdout/stderr to raw/NAME.stdout.txt / .stderr.txt.

    `role` is "server", "load" or "tool"; with --pin, servers and load generators run under taskset (which
    execs the command, so the pid is the command's)."""
    cmd = [str(c) for c in cmd]
    if PIN.get(role):
        cmd = ["taskset", "-c", PIN[role]] + cmd
    out_path = run.raw / f"{name}.stdout.txt"
    err_path = run.raw / f"{name}.stderr.txt"
    run.log_command(cmd, note)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=stdin, cwd=cwd, start_new_session=True)
    proc.out_path = out_path
    proc.err_path = err_path
    _live[proc.pid] = proc
    return proc


def stop(proc, timeout=5.0):
    """SIGTERM to the process we started, then SIGKILL to its process group if anything is left."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    if group_pids(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"warning: pid {proc.pid} did not exit after SIGKILL")
    deadline = time.time() + timeout
    while group_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    _live.pop(proc.pid, None)


def run_to_end(run, cmd, name, note, timeout):
    """Runs a client to its end (bounded by `timeout` seconds); returns (rc, stdout, stderr, seconds)."""
    started = time.time()
    proc = spawn(run, cmd, name, note)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"warning: {name} still running after {timeout} s; stopped")
        stop(proc)
        rc = None
    _live.pop(proc.pid, None)
    return rc, tail(proc.out_path, 1 << 20), tail(proc.err_path, 1 << 16), time.time() - started


def tail(path, limit):
    data = Path(path).read_bytes()
    return data[-limit:].decode("utf-8", "replace")


def wait_first_line(proc, pattern, timeout=15.0):
    """Waits for the first stdout line of `proc` and matches `pattern` on it; returns the match."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = Path(proc.out_path).read_text("utf-8", "replace")
        if "\n" in text:
            line = text.split("\n", 1)[0]
            match = re.search(pattern, line)
            if not match:
                raise RuntimeError(f"unexpected first line {line!r} (wanted /{pattern}/)")
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before printing its address: "
                               f"{tail(proc.err_path, 2000).strip()}")
        time.sleep(0.02)
    raise RuntimeError(f"no first line within {timeout} s")


def wait_port(proc, port, timeout=15.0):
    """Waits until 127.0.0.1:port accepts connections while `proc` is alive."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {tail(proc.err_path, 2000).strip()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not accepting within {timeout} s")


def free_port():
    """A port that is free now, below the ephemeral range so no client's outgoing connection takes it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port found in 20000-32000")


# ---------------------------------------------------------------------------------------------- /proc


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def group_pids(pgid):
    """Processes (thread-group leaders) whose process group is `pgid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(entry)[2]) == pgid:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def cpu_seconds(pgid):
    """utime + stime of every process in the group (each summed over its threads by the kernel)."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / CLK_TCK


def rss_kib(pgid):
    """VmRSS summed over the group, in KiB."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


# ---------------------------------------------------------------------------------------------- passes


def record_error(run, rnd, server, error, what=None):
    """Logs a failed pass (or part of one, `what`) of `server` in round `rnd` and records it."""
    if what:
        log(f"  ! {server} {what}: {error}")
        error = f"{what}: {error}"
    else:
        log(f"  ! {error}")
    run.record({"kind": "error", "round": rnd, "server": server, "error": str(error)})


def measured_run(run, pid, cmd, name, note, timeout):
    """`run_to_end` with the CPU seconds of `pid`'s group (the server) read around it; returns
    (rc, stdout, stderr, seconds, cpu_seconds)."""
    cpu0 = cpu_seconds(pid)
    rc, out, err, wall = run_to_end(run, cmd, name, note, timeout=timeout)
    return rc, out, err, wall, cpu_seconds(pid) - cpu0


def measure_idle(run, rnd, server, pid, target, count, first):
    """Opens `count` idle connections to `target` with the peers' `idle_conns` (`first` says what each
    sends first: `--echo SIZE` or `--http PATH`) and holds them while the RSS of `pid`'s group (the
    server) is read before and after; records and returns the `idle` record. Raises RuntimeError when
    the opener does not get ready."""
    opener = None
    try:
        time.sleep(0.2)
        before = rss_kib(pid)
        cmd = [PEERS_BIN / "idle_conns", target, "-n", count, *first, "--hold", 120]
        name = run.raw_name("idle", server, f"r{rnd}")
        opener = spawn(run, cmd, name, f"idle opener -> {server}", stdin=subprocess.PIPE)
        # poll scans every open connection on each wait, so opening 10,000 one after another with a
        # round trip each is quadratic there: 70-95 s on the 2-core test machine.
        match = wait_first_line(opener, r"^ready (\d+) (\d+)", timeout=300)
        opened, failed = int(match.group(1)), int(match.group(2))
        time.sleep(0.5)
        after = rss_kib(pid)
    finally:
        if opener is not None:
            opener.stdin.close()
            try:
                opener.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            stop(opener)
    rec = {"kind": "idle", "round": rnd, "server": server, "count": count, "opened": opened, "failed": failed,
           "rss_before_kib": before, "rss_after_kib": after,
           "bytes_per_conn": (after - before) * 1024 / opened if opened else None, "raw": name}
    run.record(rec)
    return rec


# ---------------------------------------------------------------------------------------------- machine


def _command_output(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"


def machine_facts(tools):
    """Facts about the machine and the tools' versions; `tools` maps a name to the command printing it."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as f:
        mem = f.readline().split()[1]
    facts = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": socket.gethostname(),
        "nproc": _command_output(["nproc"]),
        "kernel": os.uname().release,
        "cpu": cpu,
        "memory": f"{int(mem) // 1024} MiB",
        "loadavg at start": Path("/proc/loadavg").read_text().strip(),
        "git commit": _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
        + (" (dirty tree)" if _command_output(["git", "-C", str(REPO_ROOT), "status", "--porcelain"]) else ""),
        "rustc": _command_output(["rustc", "--version"]),
        "python": sys.version.split()[0],
        "pinning": (f"servers on CPUs {PIN['server']}, load generators on CPUs {PIN['load']} (taskset)" if PIN
                    else "none (no taskset); servers and load generators share the same cores"),
    }
    for name, cmd in tools.items():
        facts[name] = _command_output(cmd).splitlines()[0] if _command_output(cmd) else "(no output)"
    return facts


def facts_markdown(facts):
    return "\n".join(f"- {k}: {v}" for k, v in facts.items()) + "\n"


def tokio_version():
    lock = (PEERS_DIR / "Cargo.lock").read_text()
    match = re.search(r'name = "tokio"\nversion = "([^"]+)"', lock)
    return match.group(1) if match else "unknown"


# ---------------------------------------------------------------------------------------------- numbers


def stats(values):
    """(median, min, max) of the non-None values, or None."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(value, digits=0):
    if value is None:
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_stats(s, digits=0):
    """'median (min–max)'."""
    if s is None:
        return "—"
    med, lo, hi = s
    return f"{fmt(med, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def ratio(value, reference):
    if value is None or not reference:
        return "—"
    return f"{value / reference:.2f}×"


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def flatten(obj, prefix=""):
    """{'a': {'b': 1}} -> {'a.b': 1}, lists indexed."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def last_json_object(text):
    """The last line of `text` that parses as a JSON object, or the whole text as one, or None."""
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None

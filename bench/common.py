"""What every benchmark shares: the machine, the processes, the load generators, the report.

A benchmark script builds a :class:`Bench` (which parses ``--quick``/``--rounds``/``--json``,
prints the machine and the exact command, and owns a temporary directory for logs),
starts real processes on loopback (the project's from its Procfile lines, the bare
baselines from the same lines with another app), loads them from separate processes
(``wrk`` or :mod:`bench.loadgen`), and records :class:`Comparison` rows: the project's
figure, the bare figure, their ratio and the target. Figures are printed, never asserted.

Long on purpose: what a benchmark script holds in common is what makes two of them
comparable (the same machine report, the same processes, the same load and the same rows),
so it stays one module every script reads the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import redis

from cli.procs import Child
from tests.support.procs import ROOT as ROOT
from tests.support.procs import Proc, free_port, procfile_command, wait_until
from tests.support.stack import HEADER, PROD_SECRET, Stack, notification

BENCH_DIR = Path(__file__).resolve().parent
LOADGEN_TIMEOUT = 600.0

# The body every generated webhook carries (about the size of a real notification).
WEBHOOK_TEMPLATE = json.dumps(
    notification(
        request_id="{REQUEST_ID}",
        detail_id="{DETAIL_ID}",
        attempt_id="{ATTEMPT_ID}",
        companyDomain="{COMPANY}.example.com",
    )
)


# -- the machine -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
        return "?"


def machine(redis_url: str | None = None) -> dict[str, Any]:
    """CPU, cores, load and the versions that matter to the figures."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "celery": _version("celery"),
        "kombu": _version("kombu"),
        "redis-py": _version("redis"),
        "flask": _version("flask"),
        "gunicorn": _version("gunicorn"),
        "httpx": _version("httpx"),
    }
    if redis_url:
        try:
            client = redis.Redis.from_url(redis_url)
            info["redis-server"] = client.info("server")["redis_version"]
            client.close()
        except redis.RedisError:
            info["redis-server"] = "?"
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        info["wrk"] = out.split()[1] if out.split()[1:] else "?"
    return info


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if argv and Path(argv[0]).name.startswith("python"):
        argv[0] = "python"
    return shlex.join(argv)


# -- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Comparison:
    """One figure of the project against its bare baseline."""

    metric: str
    unit: str
    project: float
    bare: float
    bare_name: str
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        """project / bare."""
        return self.project / self.bare if self.bare else float("nan")


def fmt(value: float) -> str:
    """A figure with a sensible number of digits."""
    if value != value:  # NaN
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Iterable[Comparison]) -> str:
    """Comparisons as a Markdown table."""
    lines = [
        "| metric | project | bare | bare baseline | ratio | target | met |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.metric} | {fmt(row.project)} {row.unit} | {fmt(row.bare)} {row.unit} "
            f"| {row.bare_name} | {fmt(row.ratio)} | {row.target} | {met} |"
        )
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Bench:
    """One benchmark run: arguments, machine, temporary directory, comparisons."""

    name: str
    description: str
    argv: Sequence[str] | None = None
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None
    args: argparse.Namespace = field(init=False)
    tmp: Path = field(init=False)
    comparisons: list[Comparison] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        parser = argparse.ArgumentParser(
            prog=f"python -m bench.{self.name}", description=self.description
        )
        parser.add_argument("--quick", action="store_true", help="a small, bounded smoke run")
        parser.add_argument(
            "--rounds", type=int, default=None, help="repeat and keep the best (default 2, quick 1)"
        )
        parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
        parser.add_argument("--keep", action="store_true", help="keep the logs directory")
        if self.extra_args is not None:
            self.extra_args(parser)
        self.args = parser.parse_args(self.argv)
        if self.args.rounds is None:
            self.args.rounds = 1 if self.args.quick else 2
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))

    @property
    def quick(self) -> bool:
        """Whether this is a ``--quick`` run."""
        return bool(self.args.quick)

    def __enter__(self) -> Bench:
        print(f"# bench.{self.name}: {self.description}", flush=True)
        print(f"command: {command_line()}  (cwd {ROOT})", flush=True)
        return self

    def header(self, redis_url: str | None) -> None:
        """Print the machine (once Redis is up, so its version is known)."""
        self.machine = machine(redis_url)
        print("machine: " + ", ".join(f"{k}={v}" for k, v in self.machine.items()), flush=True)

    def log(self, text: str) -> None:
        """A progress line, with the time since start."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def add(self, comparison: Comparison) -> Comparison:
        """Record a comparison."""
        self.comparisons.append(comparison)
        return comparison

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.monotonic() - self.started
        print()
        print(table(self.comparisons))
        for key, value in self.details.items():
            print(f"- {key}: {value}")
        print(f"\n(bench.{self.name} took {elapsed:.0f}s; logs in {self.tmp})", flush=True)
        if self.args.json is not None:
            payload = {
                "name": self.name,
                "command": command_line(),
                "machine": self.machine,
                "seconds": round(elapsed, 1),
                "failed": exc_type is not None,
                "comparisons": [{**asdict(c), "ratio": c.ratio} for c in self.comparisons],
                "details": self.details,
            }
            self.args.json.write_text(json.dumps(payload, indent=2, default=str))
        if exc_type is None and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- processes ---------------------------------------------------------------------------------


def new_stack(bench: Bench, **env: str) -> Stack:
    """Redis + sandbox with the tests' fast settings, and the machine header printed."""
    directory = bench.tmp / "stack"
    directory.mkdir(parents=True, exist_ok=True)
    # The sandbox keeps connections open, as Pax8 does (the test stack's default does not).
    stack = Stack(directory, env=env, sandbox_options={"keep_alive": True})
    bench.header(stack.redis_server.url)
    return stack


def web_command(target: str) -> str:
    """The Procfile ``web`` line serving ``target`` instead of the receiver (same settings)."""
    command = procfile_command("web")
    if "receiver.wsgi:app" not in command:
        raise RuntimeError(f"unexpected Procfile web line: {command}")
    return command.replace("receiver.wsgi:app", target)


def worker_command(app: str) -> str:
    """The Procfile ``worker`` line running the Celery app ``app`` (same pool and settings)."""
    command = procfile_command("worker")
    if "-A worker.app" not in command:
        raise RuntimeError(f"unexpected Procfile worker line: {command}")
    return command.replace("-A worker.app", f"-A {app}")


@dataclass
class Web:
    """A gunicorn started from the Procfile ``web`` line."""

    name: str
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        """Its webhook URL."""
        return f"http://127.0.0.1:{self.port}/webhooks/pax8"


def start_web(stack: Stack, name: str, target: str | None = None, workers: int = 2) -> Web:
    """gunicorn serving ``target`` (the receiver when None) with ``WEB_CONCURRENCY=workers``."""
    if target is None:
        # Metrics on, as deployed: the workers record, the master serves its exporter.
        proc = stack.start_receiver(WEB_CONCURRENCY=str(workers), WEB_METRICS_PORT=str(free_port()))
        return Web(name, proc, stack.receiver_port)
    port = free_port()
    env = {"WEB_CONCURRENCY": str(workers), "BIND_HOST": "127.0.0.1", "PORT": str(port)}
    proc = Proc(name, web_command(target), {**stack.env, **env}, stack.tmp_path)
    stack.procs.append(proc)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Web(name, proc, port)


def start_bare_worker(stack: Stack, concurrency: int = 2) -> Proc:
    """The bare Celery worker (``bench.bare_celery``) from the Procfile ``worker`` line."""
    env = {"WORKER_CONCURRENCY": str(concurrency), "PORT": str(free_port())}
    proc = Proc(
        "bare-worker", worker_command("bench.bare_celery"), {**stack.env, **env}, stack.tmp_path
    )
    stack.procs.append(proc)
    proc.wait_log("ready.", timeout=60)
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree so far (children that exited excluded)."""
    total = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


# -- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    """What the load generators saw: one row per request."""

    rows: list[tuple[str, float, float, float, int, int]]
    seconds: float

    def statuses(self) -> dict[int, int]:
        """Final status → count (0: no answer)."""
        out: dict[int, int] = {}
        for row in self.rows:
            out[row[4]] = out.get(row[4], 0) + 1
        return dict(sorted(out.items()))

    def ok(self) -> int:
        """Requests finally answered 2xx."""
        return sum(1 for row in self.rows if 200 <= row[4] < 300)

    def latencies_ms(self, warmup: float = 0.0) -> list[float]:
        """Done minus due, in ms, of 2xx answers due after the first ``warmup`` seconds.

        The first requests of a run open every connection (client and server side) and
        take up to ~200 ms on a busy machine: left in, they would be the p99.
        """
        start = min((r[1] for r in self.rows), default=0.0) + warmup
        return [(r[3] - r[1]) * 1000 for r in self.rows if 200 <= r[4] < 300 and r[1] >= start]

    def retried(self) -> int:
        """Requests that needed more than one try."""
        return sum(1 for row in self.rows if row[5] > 1)


def run_load(
    tmp: Path,
    port: int,
    *,
    items: Sequence[dict[str, str]] | None = None,
    generate: dict[str, Any] | None = None,
    rate: float | None = None,
    concurrency: int = 32,
    processes: int = 2,
    headers: dict[str, str] | None = None,
    retries: int = 0,
    timeout: float = LOADGEN_TIMEOUT,
) -> Load:
    """Run ``processes`` load generators together (items split between them); merge rows.

    ``items`` are ``{"id", "path", "body"}``; or ``generate`` = ``{"path", "template",
    "count"}``. ``rate`` and ``concurrency`` are totals over all processes.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    start_at = time.time() + 0.5 + 0.2 * processes
    specs = []
    for index in range(processes):
        spec: dict[str, Any] = {
            "port": port,
            "headers": headers if headers is not None else {HEADER: PROD_SECRET},
            "concurrency": max(1, concurrency // processes),
            "rate": rate / processes if rate else None,
            "retries": retries,
            "start_at": start_at + (index / rate if rate else 0.0),
            "out": str(tmp / f"load-{index}.out.json"),
        }
        if items is not None:
            path = tmp / f"load-{index}.jsonl"
            with path.open("w") as handle:
                for item in items[index::processes]:
                    handle.write(json.dumps(item) + "\n")
            spec["items"] = str(path)
        else:
            assert generate is not None
            count = int(generate["count"]) // processes
            spec["generate"] = {**generate, "count": count}
        specs.append(spec)
    procs = []
    for index, spec in enumerate(specs):
        spec_path = tmp / f"load-{index}.spec.json"
        spec_path.write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "bench.loadgen", str(spec_path)]
        procs.append(Child(f"loadgen-{index}", argv, os.environ, tmp / f"load-{index}.log", ROOT))
    for proc in procs:
        if proc.popen.wait(timeout) != 0:
            code = proc.popen.returncode
            raise RuntimeError(f"a load generator failed (rc {code})\n{proc.tail()}")
        proc.stop()
    rows: list[tuple[str, float, float, float, int, int]] = []
    for spec in specs:
        data = json.loads(Path(spec["out"]).read_text())
        rows += [(str(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in data["rows"]]
        Path(spec["out"]).unlink()
    first = min((r[2] for r in rows), default=start_at)
    last = max((r[3] for r in rows), default=start_at)
    return Load(rows, last - first)


@dataclass
class WrkResult:
    """What a wrk run measured."""

    requests: int
    seconds: float
    ok: int
    bad: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Acknowledged (2xx) requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0


def wrk_peak(web: Web, warmup: float, seconds: float) -> tuple[WrkResult, float]:
    """One peak measurement of ``web``: a warm-up, then wrk for ``seconds``; the result and
    the gunicorn CPU it cost per request, in milliseconds (master and workers)."""
    run_wrk(web.url, warmup)
    before = cpu_seconds(web.proc.pid)
    result = run_wrk(web.url, seconds)
    return result, (cpu_seconds(web.proc.pid) - before) * 1000 / max(1, result.requests)


def run_wrk(
    url: str, seconds: float, connections: int = 8, threads: int = 1, pace_ms: float = 0.0
) -> WrkResult:
    """wrk with ``bench/webhook.lua``: distinct webhooks (fresh UUIDs) for ``seconds``.

    ``pace_ms`` makes each connection wait that long before each request, so the
    offered rate is about ``connections * 1000 / pace_ms`` per second.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get update && apt-get install -y wrk")
    nonce = os.urandom(4).hex()
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "webhook.lua"),
        url,
        "--",
        HEADER,
        PROD_SECRET,
        nonce,
        f"{pace_ms:.3f}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(match.group(1))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        bad=data["bad"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


# -- the sandbox -------------------------------------------------------------------------------

RESULTS_OPERATION = "POST /v2/provision-requests/{id}/results"


def result_posts(stack: Stack) -> int:
    """How many result POSTs the sandbox has answered (cheap to poll)."""
    by_operation = stack.sandbox.calls()["by_operation"]
    return int(by_operation.get(RESULTS_OPERATION, 0))


def wait_result_posts(stack: Stack, count: int, timeout: float, interval: float = 0.25) -> float:
    """Wait until ``count`` result POSTs arrived; the time waited. Raises past ``timeout``."""
    started = time.monotonic()
    wait_until(
        lambda: result_posts(stack) >= count,
        timeout,
        interval,
        message=lambda: (
            f"{result_posts(stack)} of {count} results after {timeout:g}s\n" + stack.describe()
        ),
    )
    return time.monotonic() - started


def epoch(iso: str) -> float:
    """A sandbox ``createdDate`` (``...Z``, microseconds) as epoch seconds."""
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Tally:
    """Results at the sandbox for a set of requests: lost and duplicated ones counted."""

    expected: int
    results: int
    distinct: int
    lost: int
    duplicates: int
    statuses: dict[str, int]
    created: dict[str, float]  # request id -> time of its (first) result

    def clean(self) -> bool:
        """Every request has exactly one result."""
        return self.lost == 0 and self.duplicates == 0


def tally(stack: Stack, request_ids: Iterable[str]) -> Tally:
    """Count the sandbox's results for ``request_ids`` (one GET of every result)."""
    wanted = set(request_ids)
    created: dict[str, float] = {}
    results = duplicates = 0
    statuses: dict[str, int] = {}
    for result in stack.sandbox.results():
        request_id = result["provisionRequestId"]
        if request_id not in wanted:
            continue
        results += 1
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        if request_id in created:
            duplicates += 1
        else:
            created[request_id] = epoch(result["createdDate"])
    return Tally(
        expected=len(wanted),
        results=results,
        distinct=len(created),
        lost=len(wanted) - len(created),
        duplicates=duplicates,
        statuses=statuses,
        created=created,
    )


def collect(
    stack: Stack, request_ids: Sequence[str], timeout: float, settle: float = 10.0
) -> Tally:
    """Wait for a result per request (polling the cheap call counter first), then tally.

    The counter also counts refused POSTs (a 401 after a sandbox reset), so once it is
    reached the results themselves are polled for up to ``settle`` more seconds.
    """
    wait_result_posts(stack, len(request_ids), timeout)
    deadline = time.monotonic() + settle
    while True:
        found = tally(stack, request_ids)
        if found.lost == 0 or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def acknowledged_requests(stack: Stack, count: int, chunk: int = 5000) -> list[dict[str, str]]:
    """``count`` NetNew requests at the sandbox with an Acknowledged attempt, nothing delivered."""
    out: list[dict[str, str]] = []
    while len(out) < count:
        out += stack.sandbox.bulk(min(chunk, count - len(out)), attempt_status="Acknowledged")
    return out


def webhook_items(requests: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """A notification per sandbox request, with a distinct company domain each.

    The sandbox's bulk requests share one domain, which the example vendor would refuse
    for all but the first company; the worker provisions from the notification's payload.
    """
    items = []
    for created in requests:
        body = notification(
            request_id=created["id"],
            detail_id=created["detailId"],
            attempt_id=created["attemptId"],
        )
        items.append({"id": created["id"], "path": "/webhooks/pax8", "body": json.dumps(body)})
    return items


def result_items(requests: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """A ProvisionResult POST per sandbox request (for the sandbox's own ceiling)."""
    return [
        {
            "id": created["id"],
            "path": f"/v2/provision-requests/{created['id']}/results",
            "body": json.dumps({"provisionAttemptId": created["attemptId"], "status": "Success"}),
        }
        for created in requests
    ]


def best(values: Iterable[float], higher_is_better: bool = True) -> float:
    """The best of several rounds."""
    items = [v for v in values if v == v]
    if not items:
        return float("nan")
    return max(items) if higher_is_better else min(items)

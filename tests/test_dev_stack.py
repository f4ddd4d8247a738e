"""``fulfill dev``: the README's first command, from start to a clean stop.

It runs as a user runs it (a subprocess, free ports, a fresh data directory, a working
directory without a Procfile), fires the demo orders and must stop every process it
started: afterwards no port answers and no process refers to its data directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cli.procs import port_taken
from cli.redis_server import free_port, port_open

DEV_TIMEOUT = 240.0


def _fulfill() -> list[str]:
    script = Path(sys.executable).parent / "fulfill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def _metrics_base(taken: list[int]) -> int:
    """A port that is free with the next two (the receiver's, worker's and beat's exporters).

    Below the kernel's ephemeral range: a port there is never handed to an outgoing
    connection, which could take ``base + 1`` between this check and the exporter's bind.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for base in random.sample(range(20_000, low - 3), 200):
        if not {base, base + 1, base + 2} & set(taken) and not any(
            port_taken(p) for p in (base, base + 1, base + 2)
        ):
            return base
    raise AssertionError("no three consecutive free ports below the ephemeral range")


def _ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _processes_using(path: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if str(path) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def _run_dev(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*_fulfill(), "dev", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=DEV_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # fulfill dev stops its stack on SIGTERM
        out, err = proc.communicate(timeout=90)
        pytest.fail(f"fulfill dev ran over {DEV_TIMEOUT:g}s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_dev_runs_the_demo_to_results_and_stops_everything(tmp_path: Path) -> None:
    port, sandbox_port, flower_port, redis_port, console_port = _ports(5)
    metrics = _metrics_base([port, sandbox_port, flower_port, redis_port, console_port])
    data = tmp_path / "stack"
    result = _run_dev(
        [
            "--once", "--orders", "8", "--workers", "1",
            "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--flower-port", str(flower_port), "--redis-port", str(redis_port),
            "--console-port", str(console_port), "--metrics-port", str(metrics),
            "--data-dir", str(data),
        ],
        cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}\n{_tail(data / 'stack.log')}"

    # The stack came up the way the getting-started page says.
    assert f"redis     redis://127.0.0.1:{redis_port}/0" in out
    assert f"sandbox   http://127.0.0.1:{sandbox_port}" in out
    assert f"-> http://127.0.0.1:{port}/webhooks/pax8" in out
    assert f"receiver  http://127.0.0.1:{port}/readyz answers 200" in out
    assert "ready" in out and f"flower    http://127.0.0.1:{flower_port}" in out
    assert f"console   http://127.0.0.1:{console_port}  (orders, replay" in out

    # Each order's progress and result, the honest Fails with their messages.
    progress, _, summary = out.partition("\nResults:")
    for number, kind in enumerate(["NetNew", "NetNew", "Update", "TrialCreate", "TrialConvert",
                                   "PartnerEnrollment", "Deprovision", "Renewal"], 1):  # fmt: skip
        label = rf"^  #{number} {kind}\s+"
        assert re.search(label + r"received", progress, re.MULTILINE), (label, out)
        assert re.search(label + r".*\breported\b", progress, re.MULTILINE), (label, out)
    assert out.count("Success  subscription sub-") >= 4
    assert "Success  partner pa-" in out
    assert "is already in use by another customer" in out
    assert "is unknown to the vendor" in out
    results = [line for line in summary.splitlines() if "expected" in line and "; got " in line]
    assert len(results) == 8, out
    assert all(line.rstrip().endswith("as expected") for line in results), out
    types = {line.split()[1] for line in results}
    assert types >= {"NetNew", "Update", "TrialCreate", "TrialConvert", "PartnerEnrollment",
                     "Deprovision", "Renewal"}  # fmt: skip

    # Then the NetNew's usage, posted to the sandbox's Usage API and read back (5 seats after
    # the Update).
    assert re.search(r"batch 1/1 \(overwrite\): 2 lines -> 200$", out, re.MULTILINE), out
    assert re.search(
        r"^  Pax8 holds for tn-\w+ \(acme-\w+\.example\.com\): 5 Users, ", out, re.MULTILINE
    )

    # Everything stopped; the data stayed.
    assert "Stopped." in out
    for used in (
        port,
        sandbox_port,
        flower_port,
        redis_port,
        console_port,
        *range(metrics, metrics + 3),
    ):
        assert not port_open(used), f"port {used} still open"
    assert _processes_using(data) == []
    assert (data / "redis").is_dir() and (data / "dev.env").is_file()
    settings = (data / "dev.env").read_text()
    assert f"REDIS_URL=redis://127.0.0.1:{redis_port}/0" in settings
    assert "PAX8_SIMULATION_WEBHOOK_SECRETS=" in settings


@pytest.mark.slow
def test_dev_runs_a_two_backend_demo_with_a_worker_per_route(tmp_path: Path) -> None:
    """``fulfill dev --routes deploy/routes-dev.toml``: a worker per route beside the one of
    everything else, each route's product provisioned at its backend, a subscription moved
    across the two and changed there, a product no route lists and a partner enrollment
    refused with one Fail each; then everything stops."""
    port, sandbox_port, flower_port, redis_port, console_port = _ports(5)
    data = tmp_path / "stack"
    routes = Path(__file__).resolve().parents[1] / "deploy" / "routes-dev.toml"
    result = _run_dev(
        [
            "--once", "--routes", str(routes), "--metrics-port", "0",
            "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--flower-port", str(flower_port), "--redis-port", str(redis_port),
            "--console-port", str(console_port), "--data-dir", str(data),
        ],
        cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}\n{_tail(data / 'stack.log')}"
    for route in ("backup", "archive"):
        assert f"worker    route {route}: a worker of its own" in out
        consumed = _queues(data / f"worker-{route}.log")
        assert consumed.splitlines() == [
            f".> fulfillment.route.{route} exchange=fulfillment(direct) "
            f"key=fulfillment.route.{route}"
        ], consumed
    # The worker of everything else consumes neither route's queue.
    main = _queues(data / "stack.log")
    assert "fulfillment.report" in main and "fulfillment.route." not in main
    assert re.search(r"\[backup\] Success  subscription sub-", out), out
    assert re.search(r"^  #3 ChangeProduct\s+\[archive\] Success  subscription sub-", out, re.M)
    assert re.search(r"^  #4 Update\s+\[archive\] Success", out, re.M), out
    assert re.search(r"\[-\] Fail  This vendor's integration does not provision product", out)
    assert "[-] Fail  This vendor's integration takes no partner enrollments" in out
    results = [line for line in out.split("\nResults:")[1].splitlines() if "; got " in line]
    assert len(results) == 6 and all(line.rstrip().endswith("as expected") for line in results)
    assert "Stopped." in out and _processes_using(data) == []
    for used in (port, sandbox_port, flower_port, redis_port, console_port):
        assert not port_open(used), f"port {used} still open"
    settings = _env_file(data / "dev.env")
    assert settings["VENDOR_ROUTES"] == str(routes)
    assert settings["WORKER_EXCLUDE_ROUTES"] == "backup,archive"
    assert "VENDOR_ADAPTER" not in settings


def test_dev_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        redis_port = free_port()
        result = _run_dev(
            ["--once", "--port", str(taken), "--redis-port", str(redis_port),
             "--data-dir", str(tmp_path / "stack")],
            cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2, result
    assert f"--port: port {taken} on 127.0.0.1 is in use" in result.stderr
    assert not port_open(redis_port)  # nothing was started


def _queues(log: Path) -> str:
    """The ``[queues]`` section of the first Celery banner in ``log`` (what it consumes)."""
    text = log.read_text(errors="replace")
    return text.split("[queues]", 1)[1].split("[tasks]", 1)[0].strip()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@pytest.mark.slow
def test_certify_and_doctor_pass_against_the_dev_stack(tmp_path: Path) -> None:
    """The issue's "done when": against fulfill dev's stack (its demo run first), fulfill
    certify --out r exits 0 with eight passed types and the failure path, both reports
    written, and fulfill doctor exits 0; then the stack stops on SIGTERM like on Ctrl-C."""
    port, sandbox_port, flower_port, redis_port, console_port = _ports(5)
    data = tmp_path / "stack"
    args = ["--orders", "8", "--workers", "1", "--metrics-port", "0",
            "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--flower-port", str(flower_port), "--redis-port", str(redis_port),
            "--console-port", str(console_port), "--data-dir", str(data)]  # fmt: skip
    log = (tmp_path / "dev.out").open("w")
    proc = subprocess.Popen([*_fulfill(), "dev", *args], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        deadline = time.monotonic() + DEV_TIMEOUT
        while "Running; Ctrl-C stops everything." not in (tmp_path / "dev.out").read_text():
            assert proc.poll() is None, (tmp_path / "dev.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.out").read_text()
            time.sleep(0.5)
        env = {**os.environ, **_env_file(data / "dev.env")}
        assert env["PUBLIC_URL"] == f"http://127.0.0.1:{port}"
        fulfill = [*_fulfill()]
        certify = subprocess.run([*fulfill, "certify", "--out", "r"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=300)  # fmt: skip
        assert certify.returncode == 0, certify.stdout + certify.stderr
        assert "PASSED: 8 of 8 order types passed; failure path passed." in certify.stdout
        report = json.loads((tmp_path / "r" / "pax8-certification.json").read_text())
        assert report["passed"] and len(report["types"]) == 8
        assert all(t["passed"] for t in report["types"]) and report["failurePath"]["passed"]
        assert (
            (tmp_path / "r" / "pax8-certification.md")
            .read_text()
            .startswith("# Pax8 provisioning certification: PASSED")
        )
        doctor = subprocess.run([*fulfill, "doctor"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert " 0 fail." in doctor.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert "Stopped." in (tmp_path / "dev.out").read_text()
    assert _processes_using(data) == []

"""WORKER_POOL on real processes: the Procfile's worker line refuses a pool other than
prefork or gevent, and a worker whose running pool is not WORKER_POOL's, each with one line
and before it touches Redis (nothing listens at the URL these use)."""

from __future__ import annotations

from pathlib import Path

from tests.support.procs import Proc, free_port, procfile_command

NOWHERE = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}


def _stops(tmp_path: Path, name: str, command: str, env: dict[str, str]) -> list[str]:
    """Run ``command``; the lines it wrote once it exited with 2."""
    proc = Proc(name, command, {**NOWHERE, "PORT": str(free_port()), **env}, tmp_path)
    try:
        assert proc.popen.wait(60) == 2, proc.describe()
    finally:
        proc.stop()
    return [line for line in proc.log().splitlines() if line.startswith("fulfillment:")]


def test_a_pool_other_than_prefork_or_gevent_stops_the_worker_line_with_one_line(
    tmp_path: Path,
) -> None:
    lines = _stops(tmp_path, "threads", procfile_command("worker"), {"WORKER_POOL": "threads"})
    assert lines == [
        "fulfillment: configuration error: WORKER_POOL: Input should be 'prefork' or 'gevent'"
    ]


def test_a_worker_not_running_the_pool_worker_pool_names_stops_with_one_line(
    tmp_path: Path,
) -> None:
    # gevent named by the settings, prefork on the command line, and the other way round.
    command = procfile_command("worker").replace("${WORKER_POOL:-prefork}", "prefork")
    (line,) = _stops(tmp_path, "unpatched", command, {"WORKER_POOL": "gevent"})
    assert "WORKER_POOL is gevent but this worker runs the prefork pool" in line
    assert "start it with --pool gevent" in line
    command = procfile_command("worker").replace("${WORKER_POOL:-prefork}", "gevent")
    (line,) = _stops(tmp_path, "mismatch", command, {"WORKER_POOL": "prefork"})
    assert "WORKER_POOL is prefork but this worker runs the gevent pool" in line

"""Deployment files: the Procfile, bin/procfile, docker-compose.yml and the Dockerfile agree.

No Docker engine runs here, so the compose file and the Dockerfile are checked for what
can go wrong silently (a service naming a Procfile line that does not exist, a package
the image forgets, Redis without AOF), and bin/procfile is run for real.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx
import yaml

from tests.support.procs import ROOT, Proc, free_port

PROCFILE_LINES = {
    line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line
}


def test_procfile_has_the_designed_processes() -> None:
    assert PROCFILE_LINES == {"web", "worker", "beat", "flower", "sandbox"}
    text = (ROOT / "Procfile").read_text()
    assert "gunicorn receiver.wsgi:app" in text and "${PORT:-8000}" in text
    assert "celery -A worker.app worker" in text and "--pool prefork" in text
    assert "celery -A worker.app beat" in text and "celery -A worker.app flower" in text


def test_compose_services_run_procfile_lines_and_redis_keeps_an_aof() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat", "flower", "sandbox"):
        assert services[name]["command"] == [name], name
        assert name in PROCFILE_LINES
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert services["web"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_dockerfile_copies_every_package_and_runs_procfile_lines() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert set(packages) <= copied
    assert 'ENTRYPOINT ["bin/procfile"]' in dockerfile
    assert "USER fulfillment" in dockerfile


def test_bin_procfile_runs_a_line_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        "procfile-sandbox", ["bin/procfile", "sandbox"], {"SANDBOX_PORT": str(port)}, tmp_path
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/sandbox/health")
        assert httpx.get(f"http://127.0.0.1:{port}/sandbox/health").json() == {"status": "ok"}
    finally:
        proc.stop()
    unknown = Proc("procfile-unknown", ["bin/procfile", "nope"], {}, tmp_path)
    assert unknown.popen.wait(10) == 2
    unknown.stop()
    assert "no 'nope' line" in unknown.log()

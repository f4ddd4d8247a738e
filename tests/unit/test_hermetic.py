"""The unit tier is hermetic: settings come from explicit values, never the environment.

A developer's shell (``. .stack/dev.env``), a CI variable or a ``.env`` file in the working
directory must not change a unit test's outcome. Every unit test builds its settings with
:func:`config.settings.explicit_settings` (through ``make_settings`` in the conftest); the
first test holds the tier's source to that, the second runs a representative part of the
tier in a subprocess whose environment and working directory say the opposite of what the
tests assume (CI runs the whole tier that way: ``.ci/run``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT

HOSTILE = {
    "REDIS_WAIT_REPLICAS": "1",  # every durable write would wait for a replica none has
    "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
    "VENDOR_ADAPTER": "http",  # the worker would refuse to start without VENDOR_HTTP_URL
}

# Tests whose settings reach the receiver (Pax8 and CloudBlue), the worker's domain
# functions and reconciliation, and the settings' own checks; each failed here before the
# tier was hermetic.
REPRESENTATIVE = (
    "test_receiver.py",
    "test_cloudblue_receiver.py",
    "test_reconcile.py",
    "test_high_availability.py",
    "test_metrics.py",
)

FROM_THE_ENVIRONMENT = {"build_settings", "load_settings", "get_settings", "Settings"}


def hostile_directory(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working directory whose ``.env`` says :data:`HOSTILE`, and an environment that
    says it too."""
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in HOSTILE.items()))
    # Not the outer run's own PYTEST_* variables (an xdist worker's name, the current test):
    # the inner run is a session of its own.
    outer = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return tmp_path, {**outer, **HOSTILE}


def test_no_unit_test_builds_settings_from_the_environment() -> None:
    offenders = []
    for path in sorted((ROOT / "tests" / "unit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in FROM_THE_ENVIRONMENT:
                    offenders.append(f"{path.name}:{node.lineno} {name}()")
    assert offenders == [], "use explicit_settings (or make_settings): " + ", ".join(offenders)


def test_the_environment_is_really_hostile(tmp_path: Path) -> None:
    """What the next test runs under would change settings read from the environment."""
    cwd, env = hostile_directory(tmp_path)
    for name in HOSTILE:  # the .env alone, then the variables alone
        env.pop(name)
    probe = (
        "from config.settings import build_settings; s = build_settings(); "
        "print(s.redis_wait_replicas, s.redis_url, s.vendor_adapter)"
    )
    from_file = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert from_file.stdout.split() == ["1", HOSTILE["REDIS_URL"], "http"]


def test_the_unit_tier_passes_in_a_hostile_environment(tmp_path: Path) -> None:
    cwd, env = hostile_directory(tmp_path)
    tests = [str(ROOT / "tests" / "unit" / name) for name in REPRESENTATIVE]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout

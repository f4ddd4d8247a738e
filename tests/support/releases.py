"""Earlier releases of the project, found in its history and run as real processes.

The upgrade tests (``tests/test_upgrade.py``) start a previous release beside (or before)
the current code. A release is found without git tags (a clone may not carry them):

* **its commit** is the one that set its version in ``pyproject.toml`` (the release commit
  of CONTRIBUTING.md's procedure), found with ``git log -G`` on the version line; unless
  ``RELEASES`` pins another (0.1.0's tree is 013b22d, long after the first commit, which set
  0.1.0);
* **the previous release** is the newest release up to the version in ``pyproject.toml``
  whose tree is not this one: at a release commit, the release before it; on any commit
  after it, that release (what deployments run until the next).

A release is built as a deployment builds it: ``git archive`` of its commit into a temporary
directory, a venv of its own, ``pip install --require-hashes -r requirements.lock`` (its own
lock: what it was released with), then the project itself with ``--no-deps``. Nothing is
cached in the repository; pip's own cache is pip's.

``python -m tests.support.releases`` prints the releases and which one is the previous.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from cli.procs import procfile_lines
from tests.support.procs import ROOT, Proc

RELEASES = ROOT / "RELEASES"
_PIN = re.compile(r"^(\S+)\s+([0-9a-f]{40})\b")


class HistoryMissing(AssertionError):
    """The clone lacks the history the upgrade tests need (a shallow clone, say)."""


def git(*args: str, root: Path = ROOT) -> str:
    """``git args`` in ``root``; its output."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise HistoryMissing(f"git {shlex.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Release:
    """One release: its version and the commit whose tree it is."""

    version: str
    commit: str
    pinned: bool = False
    """Named by ``RELEASES`` rather than found as the commit that set the version."""

    @property
    def short(self) -> str:
        """The commit, abbreviated."""
        return self.commit[:7]

    def __str__(self) -> str:
        return f"{self.version} ({self.short})"


def pins(path: Path = RELEASES) -> dict[str, str]:
    """version → commit, for the releases ``RELEASES`` names (none without the file)."""
    found: dict[str, str] = {}
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            found[match.group(1)] = match.group(2)
    return found


def _version_at(commit: str, root: Path) -> str | None:
    try:
        text = git("show", f"{commit}:pyproject.toml", root=root)
    except HistoryMissing:
        return None
    return str(tomllib.loads(text)["project"]["version"])


def releases(root: Path = ROOT) -> list[Release]:
    """Every release, oldest first."""
    if git("rev-parse", "--is-shallow-repository", root=root).strip() == "true":
        raise HistoryMissing(
            "this clone is shallow: the upgrade tests find earlier releases in the history "
            "(git fetch --unshallow)"
        )
    found: dict[str, Release] = {}
    log = git("log", "--reverse", "--format=%H", "-G", r"^version = ", "--", "pyproject.toml",
              root=root)  # fmt: skip
    for commit in log.split():
        version = _version_at(commit, root)
        if version is not None and version not in found:
            found[version] = Release(version, commit)
    for version, commit in pins(root / "RELEASES").items():
        git("cat-file", "-e", f"{commit}^{{commit}}", root=root)
        found[version] = Release(version, commit, pinned=True)
    return sorted(found.values(), key=lambda r: Version(r.version))


def current_version(root: Path = ROOT) -> str:
    """The version in the working tree's ``pyproject.toml``."""
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def is_this_tree(release: Release, root: Path = ROOT) -> bool:
    """Whether the working tree is ``release``'s tree (no tracked file differs)."""
    done = subprocess.run(["git", "diff", "--quiet", release.commit, "--"], cwd=root)
    return done.returncode == 0


def previous(root: Path = ROOT) -> Release:
    """The release a deployment of this tree upgrades from."""
    here = Version(current_version(root))
    candidates = [r for r in releases(root) if Version(r.version) <= here]
    for release in reversed(candidates):
        if not is_this_tree(release, root):
            return release
    raise HistoryMissing(f"no release before {here} in the history")


def by_version(version: str, root: Path = ROOT) -> Release:
    """The release ``version``."""
    for release in releases(root):
        if release.version == version:
            return release
    raise HistoryMissing(f"no release {version} in the history")


# -- building and running one ---------------------------------------------------------------


@dataclass
class Built:
    """A release checked out and installed in a venv of its own."""

    release: Release
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        """The venv's scripts (gunicorn, celery, fulfill, python)."""
        return self.root / ".venv" / "bin"

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """``extra`` for one of its processes: its own venv first on PATH, its own tree on
        PYTHONPATH (never this checkout's)."""
        return {
            **extra,
            "VIRTUAL_ENV": str(self.root / ".venv"),
            "PYTHONPATH": str(self.root),
        }

    def start(self, line: str, name: str, env: Mapping[str, str], log_dir: Path) -> Proc:
        """Its Procfile line ``line``, from its own tree, with its own venv."""
        command = procfile_lines(self.root / "Procfile")[line]
        script = f'export PATH="{self.bin}:$PATH"; exec {command}'
        return Proc(name, ["bash", "-c", script], self.env(env), log_dir, cwd=self.root)

    def describe(self) -> str:
        """What was built and how long each part took."""
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings.items())
        return f"release {self.release} built in {sum(self.timings.values()):.1f}s ({parts})"


def build(release: Release, into: Path) -> Built:
    """Check ``release`` out into ``into`` and install it as a deployment does."""
    root = into / f"pax8-fulfillment-{release.version}"
    root.mkdir(parents=True)
    built = Built(release, root)

    def step(name: str, command: list[str]) -> None:
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        built.timings[name] = time.monotonic() - started
        if done.returncode != 0:
            raise AssertionError(
                f"building {release}: {shlex.join(command)} exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )

    source, target = shlex.quote(str(ROOT)), shlex.quote(str(root))
    archive = f"git -C {source} archive {release.commit} | tar -x -C {target}"
    step("checkout", ["bash", "-o", "pipefail", "-c", archive])
    step("venv", [sys.executable, "-m", "venv", str(root / ".venv")])
    pip = [str(built.bin / "python"), "-m", "pip", "install", "--quiet"]
    step("its lock", [*pip, "--require-hashes", "-r", str(root / "requirements.lock")])
    step("the project", [*pip, "--no-deps", str(root)])
    return built


if __name__ == "__main__":
    for found in releases():
        how = "pinned by RELEASES" if found.pinned else "the commit that set its version"
        print(f"{found.version:<10} {found.commit}  {how}")
    print(f"this tree: {current_version()}; the previous release: {previous()}")

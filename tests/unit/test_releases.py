"""How the upgrade tests find a release in the history, without tags: on a small git repository
made here, release by release, as CONTRIBUTING.md's procedure makes them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.releases import HistoryMissing, previous, releases


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit(root: Path, message: str, version: str | None = None, **files: str) -> str:
    if version is not None:
        (root / "pyproject.toml").write_text(f'[project]\nname = "x"\nversion = "{version}"\n')
    for name, text in files.items():
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


def test_a_release_is_the_commit_that_set_its_version_unless_pinned(repo: Path) -> None:
    first = commit(repo, "the first commit sets 0.1.0", "0.1.0", RELEASES="# none\n", code="a")
    deployed = commit(repo, "work on 0.1.0", code="b")
    commit(repo, "more work", code="c")
    found = releases(repo)
    assert [(r.version, r.commit, r.pinned) for r in found] == [("0.1.0", first, False)]
    assert previous(repo).commit == first  # this tree is not 0.1.0's: it upgrades from it

    commit(repo, "0.1.0 was deployed from another commit", RELEASES=f"0.1.0  {deployed}  why\n")
    assert [(r.version, r.commit, r.pinned) for r in releases(repo)] == [("0.1.0", deployed, True)]

    release = commit(repo, "release 0.2.0", "0.2.0")
    # At the release commit itself, the previous release is the one before it...
    assert previous(repo).version == "0.1.0"
    assert [(r.version, r.commit) for r in releases(repo)][-1] == ("0.2.0", release)
    # ...and on every commit after it, the release itself: what deployments run until 0.3.0.
    commit(repo, "work after 0.2.0", code="d")
    assert (previous(repo).version, previous(repo).commit) == ("0.2.0", release)
    (repo / "code").write_text("e")  # uncommitted changes are not the release either
    assert previous(repo).version == "0.2.0"


def test_a_shallow_clone_says_what_it_lacks(repo: Path, tmp_path: Path) -> None:
    commit(repo, "0.1.0", "0.1.0", RELEASES="")
    commit(repo, "0.2.0", "0.2.0")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True
    )
    with pytest.raises(HistoryMissing, match="shallow.*git fetch --unshallow"):
        previous(shallow)

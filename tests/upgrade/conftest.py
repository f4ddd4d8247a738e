"""The upgrade tests: an earlier release, built from the history, and this code on one Redis.

Each earlier release is built once per session (``tests/support/releases.py``: its tree by
``git archive``, a venv from its own lock); the build's time is printed. Every test counts
what went in and what came out, per state an order was in when the release changed, and the
counts are printed in a table at the end of the run (and asserted in the test itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.releases import Built, Release, build, by_version, previous
from tests.support.tables import carry
from tests.support.vendor_stub import Keys, VendorStub

VENDOR_TOKEN = "upgrade-vendor-token"


@dataclass
class Count:
    """What one group of orders came to."""

    test: str
    group: str
    orders: int
    results: int
    provisioned: int
    duplicates: int
    note: str = ""


COUNTS: list[Count] = []
BUILDS: list[str] = []


def count(
    test: str, group: str, orders: int, results: int, provisioned: int, note: str = ""
) -> None:
    """Record (for the table at the end) and print one group's counts."""
    duplicates = max(0, results - orders) + max(0, provisioned - orders)
    COUNTS.append(Count(test, group, orders, results, provisioned, duplicates, note))
    print(
        f"[{test}] {group}: orders={orders} results={results} provisioned={provisioned} "
        f"duplicates={duplicates} {note}"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/upgrade/" in str(item.fspath):
            item.add_marker(pytest.mark.upgrade)


@pytest.fixture(autouse=True)
def _counts_table(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, its builds and counts go to the table printed at the end."""
    builds, counts = len(BUILDS), len(COUNTS)
    yield
    header = (
        f"{'test':<24} {'orders were':<44} {'orders':>6} {'results':>8} {'vendor':>7} "
        f"{'dupes':>6}  note"
    )
    rows = list(BUILDS[builds:])
    for c in COUNTS[counts:]:
        figures = f"{c.orders:>6} {c.results:>8} {c.provisioned:>7} {c.duplicates:>6}"
        rows.append(f"{c.test:<24} {c.group:<44} {figures}  {c.note}")
    carry(request.node, "upgrade counts", [header], rows)


_BUILT: dict[str, Built] = {}


@pytest.fixture(scope="session")
def releases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("releases")


def built(release: Release, into: Path) -> Built:
    """``release``, built once per session."""
    if release.version not in _BUILT:
        done = _BUILT[release.version] = build(release, into)
        BUILDS.append(done.describe())
        print(done.describe())
    return _BUILT[release.version]


@pytest.fixture(scope="session")
def previous_release(releases_dir: Path) -> Built:
    """The release a deployment of this tree upgrades from, built."""
    return built(previous(), releases_dir)


@pytest.fixture
def release_from(request: pytest.FixtureRequest, releases_dir: Path) -> Built:
    """The release named by the test's parameter (a version), built."""
    return built(by_version(request.param), releases_dir)


@pytest.fixture
def vendor() -> Iterator[VendorStub]:
    """The vendor both releases call (``http`` adapter): keys taken when work starts, every
    provisioning counted, whoever asked."""
    with VendorStub(token=VENDOR_TOKEN, keys=Keys.AT_START) as stub:
        yield stub

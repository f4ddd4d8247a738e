"""No import circle in the project's own code, deferred imports included.

The graph is read from the source by :mod:`tests.support.imports`: every import, wherever it
stands (module level, inside a function, inside an ``if``), except under
``if TYPE_CHECKING:``. The first tests prove the reader sees what it must on a small tree of
its own; then every package ``pyproject.toml`` ships, ``bench/`` and the tests are held to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import ImportGraph, shipped_packages
from tests.support.procs import ROOT


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path → source) under ``tmp_path``, with the packages' ``__init__``."""
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            init = tmp_path / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        path.write_text(source)
    return tmp_path


def test_a_circle_hidden_in_a_function_is_found_and_named(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "app/factory.py": "def build():\n    from app.services import make\n    return make\n",
            "app/services.py": "from app.factory import build\n\ndef make():\n    return build\n",
            "app/leaf.py": "import json\n",
        },
    )
    graph = ImportGraph.of(root, ["app"])
    assert graph.circles() == [["app.factory", "app.services", "app.factory"]]


def test_imports_inside_if_and_try_count_but_type_checking_does_not(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "pkg/a.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.b import B\n"
                "else:\n    from pkg.c import C\n"
            ),
            "pkg/b.py": "from pkg.a import x\n",
            "pkg/c.py": "try:\n    import pkg.d\nexcept ImportError:\n    pass\n",
            "pkg/d.py": "import sys\nif sys.version_info > (3,):\n    from pkg import a\n",
        },
    )
    graph = ImportGraph.of(root, ["pkg"])
    assert graph.edges["pkg.a"] == {"pkg.c"}  # the TYPE_CHECKING branch is left out
    assert graph.circles() == [["pkg.a", "pkg.c", "pkg.d", "pkg.a"]]


def test_a_submodule_that_imports_its_own_package_face_is_a_circle(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "store/__init__.py": "from store.core import Store\n",
            "store/core.py": "from store.keys import Keys\n",
            "store/keys.py": "from store import Store\n",  # through the face: a circle
            "app/user.py": "from store.keys import Keys\n",
        },
    )
    graph = ImportGraph.of(root, ["store", "app"])
    # Importing store.keys from outside runs store/__init__.py first: an edge to it too.
    assert graph.edges["app.user"] == {"store", "store.keys"}
    assert graph.circles() == [["store", "store.core", "store.keys", "store"]]


def test_the_project_has_no_import_circle() -> None:
    packages = shipped_packages(ROOT)
    tests = ["tests", "tests.support", "tests.unit", "tests.faults"]
    graph = ImportGraph.of(ROOT, [*packages, "bench", *tests])
    assert len(graph.modules) > 100  # the reader found the project's modules
    circles = [" -> ".join(circle) for circle in graph.circles()]
    assert circles == [], "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("package", ["fulfillment", "console", "worker", "receiver", "cli"])
def test_every_package_directory_is_shipped(package: str) -> None:
    """A subpackage missing from pyproject's list would be left out of the wheel."""
    shipped = set(shipped_packages(ROOT))
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / package).rglob("__init__.py")
    }
    assert found <= shipped, sorted(found - shipped)

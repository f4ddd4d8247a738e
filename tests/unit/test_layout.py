"""Each package imports only what the layout table of ``docs/architecture.md`` allows.

The table (``docs/architecture.md#layout``) is the rule: a row names a folder (or a module),
what it owns, and what it must not import. This reads the rows, applies each to every module
under its path (imports anywhere in the code, deferred ones included; not those under
``if TYPE_CHECKING:``, which only name a type) and fails naming the module, the import and
the row. So the page and the code cannot say different things.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from tests.support.imports import ImportGraph, imported_names, shipped_packages
from tests.support.procs import ROOT

ARCHITECTURE = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `([^`]+)` \| (.+?) \|(.*?)\|$")


@dataclass(frozen=True)
class Rule:
    """One row: the modules under ``prefix`` must not import ``banned``."""

    path: str
    prefix: str
    banned: tuple[str, ...]

    def covers(self, module: str) -> bool:
        """Whether ``module`` is under this row's path."""
        return module == self.prefix or module.startswith(self.prefix + ".")


def layout_rules(text: str) -> list[Rule]:
    """The rows of the ``## Layout`` section's table."""
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rules = []
    for line in section.splitlines():
        found = ROW.match(line)
        if found:
            path = found.group(1)
            prefix = path.removesuffix("/").removesuffix(".py").replace("/", ".")
            rules.append(Rule(path, prefix, tuple(re.findall(r"`([^`]+)`", found.group(3)))))
    return rules


def violations(rules: list[Rule], graph: ImportGraph) -> list[str]:
    """``module imports name (row path)`` for every import a row forbids."""
    found = []
    for module, path in sorted(graph.modules.items()):
        names = imported_names(path, module)
        for rule in (rule for rule in rules if rule.covers(module)):
            for name in sorted(names):
                if any(name == ban or name.startswith(ban + ".") for ban in rule.banned):
                    found.append(f"{module} imports {name} (the row of {rule.path})")
    return found


def project() -> ImportGraph:
    return ImportGraph.of(ROOT, [*shipped_packages(ROOT), "bench"])


def test_the_table_is_read_and_covers_every_package() -> None:
    rules = layout_rules(ARCHITECTURE.read_text())
    assert len(rules) >= 15
    prefixes = {rule.prefix for rule in rules}
    packages = {*shipped_packages(ROOT), "bench"}
    missing = sorted(p for p in packages if p not in prefixes)
    assert missing == [], f"packages without a row in docs/architecture.md#layout: {missing}"


def test_a_forbidden_import_is_found_wherever_it_stands(tmp_path: Path) -> None:
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "__init__.py").write_text("")
    (tmp_path / "low" / "model.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from high.app import App\n"  # a type only: allowed
        "def build():\n    from high import app\n    return app\n"  # deferred: counted
    )
    (tmp_path / "high").mkdir()
    (tmp_path / "high" / "__init__.py").write_text("")
    (tmp_path / "high" / "app.py").write_text("import low.model\n")
    rules = layout_rules(
        "\n## Layout\n\n| `low/` | the model | `high` |\n| `high/` | the app | |\n"
    )
    graph = ImportGraph.of(tmp_path, ["low", "high"])
    assert violations(rules, graph) == [
        "low.model imports high (the row of low/)",
        "low.model imports high.app (the row of low/)",
    ]


def test_every_package_imports_only_what_its_row_allows() -> None:
    found = violations(layout_rules(ARCHITECTURE.read_text()), project())
    assert found == [], "\n".join(found)


def test_a_long_module_says_why_in_its_docstring() -> None:
    """A module past ~500 lines is usually two concerns; one that is not says why."""
    graph = project()
    long = {
        module: path
        for module, path in graph.modules.items()
        if len(path.read_text().splitlines()) > 500
    }
    assert "cli.dev" in long  # the scan sees the long ones
    unexplained = [
        f"{module} ({len(path.read_text().splitlines())} lines)"
        for module, path in sorted(long.items())
        if "Long on purpose:" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert unexplained == [], "split it, or say why in its docstring: " + ", ".join(unexplained)

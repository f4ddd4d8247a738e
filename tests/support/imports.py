"""The project's import graph, read from the source (nothing is imported), and its circles.

Every ``import`` and ``from ... import`` counts wherever it stands: at module level, inside a
function or a method (a deferred import), inside ``if``/``try``/``with`` blocks. Only the
body of ``if TYPE_CHECKING:`` is left out: it never runs. Importing ``a.b.c`` from outside
``a.b`` also runs ``a/b/__init__.py`` first, so it is an edge to that package too. What
``importlib.import_module`` loads (a vendor adapter named in the settings) is not followed.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportGraph:
    """Modules of one tree and the modules each imports (project modules only)."""

    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Path, packages: Iterable[str]) -> ImportGraph:
        """The graph of ``packages`` (dotted names of directories under ``root``)."""
        graph = cls(root)
        for package in packages:
            directory = root.joinpath(*package.split("."))
            for path in sorted(directory.glob("*.py")):
                name = package if path.stem == "__init__" else f"{package}.{path.stem}"
                graph.modules[name] = path
        for name, path in graph.modules.items():
            graph.edges[name] = set(graph._imports_of(name, path))
        return graph

    def _imports_of(self, name: str, path: Path) -> Iterator[str]:
        is_package = path.stem == "__init__"
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            for target in self._targets(node, name, is_package):
                yield from self._with_packages(name, target)

    def _targets(self, node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
        if isinstance(node, ast.Import):
            return [found for alias in node.names if (found := self._known(alias.name))]
        base = node.module or ""
        if node.level:  # relative: from the importer's package upwards
            parts = name.split(".") if is_package else name.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([base] if base else [])])
        found = []
        for alias in node.names:
            target = self._known(f"{base}.{alias.name}") if base else None
            if target != f"{base}.{alias.name}":  # a name in the module, not a submodule
                target = self._known(base)
            if target:
                found.append(target)
        return found

    def _known(self, dotted: str) -> str | None:
        """``dotted`` if it is one of the graph's modules, else its longest known prefix."""
        parts = dotted.split(".")
        while parts:
            if ".".join(parts) in self.modules:
                return ".".join(parts)
            parts.pop()
        return None

    def _with_packages(self, importer: str, target: str) -> Iterator[str]:
        """``target``, and each package whose ``__init__`` importing it runs (those that do
        not contain the importer already)."""
        if target != importer:
            yield target
        parts = target.split(".")[:-1]
        while parts:
            package = ".".join(parts)
            inside = importer == package or importer.startswith(package + ".")
            if package in self.modules and not inside:
                yield package
            parts.pop()

    def circles(self) -> list[list[str]]:
        """Every circle: one path ``a -> b -> ... -> a`` per strongly connected group."""
        return [_a_cycle(group, self.edges) for group in _strongly_connected(self.edges)]


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``module`` (at ``path``) imports, ours or not, wherever the import
    stands but under ``if TYPE_CHECKING:`` (``from a import b`` names ``a`` and ``a.b``)."""
    is_package = path.stem == "__init__"
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            parts = module.split(".") if is_package else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([base] if base else [])])
        names.add(base)
        names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def shipped_packages(root: Path) -> list[str]:
    """The packages ``pyproject.toml`` ships (``[tool.setuptools] packages``)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return list(config["tool"]["setuptools"]["packages"])


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree``, except inside ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's groups of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep chain of imports cannot exhaust Python's recursion limit.
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges.get(node, ()):
                    groups.append(sorted(group))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return sorted(groups)


def _a_cycle(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One closed path through ``group``, from its first module back to it."""
    members = set(group)
    start = group[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child == start:
                    back = [node]
                    while back[-1] != start:
                        back.append(previous[back[-1]])
                    return [*reversed(back), start]
                if child in members and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]

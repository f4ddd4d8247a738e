"""MkDocs hooks (``mkdocs.yml``: ``hooks``): what a page shows of the code is made from the
code at build time, so it cannot drift from it.

A page asks for a generated part with a marker on a line of its own:

* ``<!-- generated: settings -->``: every field of :class:`config.settings.Settings`, as a
  table of its environment variable, type, default and description;
* ``<!-- generated: usage-settings -->``: the same table, of the usage settings only
  (their names have ``usage`` in them);
* ``<!-- generated: task-names -->``: every task and its queue (:mod:`fulfillment.names`);
* ``<!-- generated: routes-example -->``: ``deploy/routes.example.toml``, the routes file a
  unit test loads (and ``docker-compose.routes.yml`` runs), as a fenced block;
* ``<!-- generated: ledger-states -->`` and ``<!-- generated: ledger-keys -->``: the state
  diagram of :mod:`fulfillment.ledger.states` and the key table of
  :mod:`fulfillment.ledger.keys`, as their docstrings draw them.

A link from a page to a file of the repository outside ``docs/`` (``../vendors/http-api.yaml``)
is made a link to that file in the repository (``repo_url``): it works on the site as it does
where the Markdown is read in place. Nothing here reaches the network.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from config.settings import ConsoleUser, Settings
from fulfillment import names
from fulfillment.ledger import keys, states
from pax8.models import RequestType

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)
REPOSITORY_LINK = re.compile(r"\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the page's markers and point its links to repository files at the repository."""

    def generated(match: re.Match[str]) -> str:
        part = PARTS.get(match.group(1))
        if part is None:
            raise ValueError(f"{page.file.src_uri}: no generated part {match.group(1)!r}")
        return part()

    markdown = MARKER.sub(generated, markdown)
    repository = (config.repo_url or "").rstrip("/")

    def to_repository(match: re.Match[str]) -> str:
        path, anchor = match.group(1), match.group(2) or ""
        kind = "tree" if path.endswith("/") else "blob"
        return f"]({repository}/{kind}/main/{path}{anchor})"

    return REPOSITORY_LINK.sub(to_repository, markdown) if repository else markdown


# -- settings -------------------------------------------------------------------------------


def settings_table(only: Callable[[str], bool] = lambda name: True) -> str:
    """Every setting (or those whose name ``only`` keeps): variable, type, default and
    description, in the model's order."""
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if not only(name):
            continue
        cells = [f"`{name.upper()}`", type_name(field.annotation), default(field)]
        cells.append(field.description or "")
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def type_name(annotation: Any) -> str:
    """A reader's name for a setting's type (what to write in the variable)."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return type_name(args[0])
    if origin is typing.Literal:
        return " or ".join(f"`{arg}`" for arg in args)
    if origin is list:
        (item,) = args
        if item is SecretStr:
            return "secrets, comma-separated"
        if item is ConsoleUser:
            return "`name:hash` entries, comma-separated"
        if typing.get_origin(item) is tuple:
            return "`host:port` entries, comma-separated"
        if item is str:
            return "names, comma-separated"
    simple = {str: "text", int: "integer", float: "number", bool: "boolean", SecretStr: "secret",
              Path: "file path"}  # fmt: skip
    if annotation in simple:
        return simple[annotation]
    raise TypeError(f"no name for the setting type {annotation!r}: add one to docs/hooks")


def default(field: FieldInfo) -> str:
    """The default as a reader writes it (``none`` when unset)."""
    value = field.default
    if value is PydanticUndefined:
        value = field.default_factory() if field.default_factory else None  # type: ignore[call-arg]
    if value is None or value == []:
        return "none"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


# -- tasks and the ledger -------------------------------------------------------------------


def task_table() -> str:
    """Every task, its queue, and what it does."""
    rows = ["| task | queue | what it does |", "|---|---|---|"]
    for kind in RequestType:
        name = names.PROVISION_TASKS[kind]
        rows.append(f"| `{name}` | `{name}` | provision a {kind.value} order, then report it |")
    rows.append(f"| `{names.REPORT}` | `{names.REPORT}` | post the results a finished order owes |")
    rows.append(f"| `{names.RECONCILE}` | `{names.RECONCILE}` | one reconciliation (celery beat) |")
    tick, post = names.USAGE_TICK, names.USAGE_POST
    rows.append(f"| `{tick}` | `{tick}` | plan, resume or check the day's usage run (beat) |")
    rows.append(f"| `{post}` | `{post}` | post a chunk of a day's usage jobs to Pax8 |")
    rows.append(
        f"| `{names.DOCTOR}` | `{names.RECONCILE}` | `fulfill doctor`'s checks, stored for the "
        "metrics and the console (celery beat, every `DOCTOR_INTERVAL_SECONDS`) |"
    )
    route = names.route_queue("NAME")
    rows.append(
        f"| every `{names.PREFIX}.<type>` above | `{route}` | the orders of route `NAME` of a "
        "routes file, every type ([routes](routes.md#queues-and-bulkheads)) |"
    )
    return "\n".join(rows)


def routes_example() -> str:
    """``deploy/routes.example.toml`` as a fenced TOML block."""
    text = (ROOT / "deploy" / "routes.example.toml").read_text()
    return "```toml\n" + text.rstrip("\n") + "\n```"


def literal_block(module: types.ModuleType) -> str:
    """The first ``::`` literal block of ``module``'s docstring, as a fenced block."""
    text = module.__doc__ or ""
    found = re.search(r"::\n\n((?:[ ]{4}.*\n|\n)+)", text)
    if found is None:
        raise ValueError(f"{module.__name__}: its docstring has no :: block")
    lines = [line[4:] for line in found.group(1).rstrip("\n").split("\n")]
    return "```\n" + "\n".join(lines) + "\n```"


PARTS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "usage-settings": lambda: settings_table(lambda name: "usage" in name),
    "task-names": task_table,
    "routes-example": routes_example,
    "ledger-states": lambda: literal_block(states),
    "ledger-keys": lambda: literal_block(keys),
}

"""The documentation says what the code does, and the code cites only what the tree holds.

* Every setting has a description, and the configuration page's table (made by
  ``docs/hooks/generated.py`` at build time) lists every one of them.
* Every ``docs/<page>.md#<section>`` a source file or a page cites names a section that
  exists, so a reference cannot dangle after a heading is renamed.
* No file cites a design document outside the repository.
* The ledger section of ``docs/architecture.md`` names every state and attempt state.

``mkdocs build --strict`` (CI) checks the site's own links and pages.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from markdown.extensions.toc import slugify

from config.settings import Settings
from fulfillment.ledger.states import AttemptState, State
from tests.support.procs import ROOT

DOCS = ROOT / "docs"
CITATION = re.compile(r"docs/([a-z0-9-]+\.md)#([a-z0-9-]+)")
OUTSIDE = ("DESIGN" + " §", "../" + "shared")  # spelled apart: this file is scanned too


def hooks() -> ModuleType:
    """``docs/hooks/generated.py``, loaded as mkdocs loads it (a file, not a package)."""
    spec = importlib.util.spec_from_file_location("generated", DOCS / "hooks" / "generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    suffixes = {".py", ".md", ".toml", ".yml", ".yaml", ".lua", ".cfg", ".txt", ""}
    return [ROOT / name for name in listed if Path(name).suffix in suffixes
            and (ROOT / name).is_file()]  # fmt: skip


def sections(page: Path) -> set[str]:
    """The anchors of a page's headings, as MkDocs makes them."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code
    return {slugify(title, "-") for title in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_a_description(name: str) -> None:
    description = Settings.model_fields[name].description
    assert description and len(description) > 10, f"{name.upper()}: give it a description"


def test_the_configuration_table_lists_every_setting_with_its_default() -> None:
    table = hooks().settings_table()
    rows = {line.split(" | ")[0].strip("| `"): line for line in table.splitlines()[2:]}
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    assert "`redis://localhost:6379/0`" in rows["REDIS_URL"]
    assert "secrets, comma-separated" in rows["PAX8_WEBHOOK_SECRETS"]
    assert "| `text` or `json` |" in rows["LOG_FORMAT"]
    assert "| none |" in rows["PAX8_CLIENT_SECRET"]


def test_the_usage_page_lists_the_usage_settings_and_only_those() -> None:
    table = hooks().PARTS["usage-settings"]()
    rows = {line.split(" | ")[0].strip("| `") for line in table.splitlines()[2:]}
    assert {"USAGE_REPORTING", "PAX8_USAGE_API_URL", "VENDOR_HTTP_USAGE_URL"} <= rows
    assert rows == {name.upper() for name in Settings.model_fields if "usage" in name}
    assert "<!-- generated: usage-settings -->" in (DOCS / "usage.md").read_text()


def test_every_cited_section_exists() -> None:
    cited: dict[tuple[str, str], list[str]] = {}
    for path in tracked_text_files():
        for page, anchor in CITATION.findall(path.read_text(errors="replace")):
            cited.setdefault((page, anchor), []).append(str(path.relative_to(ROOT)))
    assert ("architecture.md", "layout") in cited  # the scan sees the citations
    missing = {
        f"docs/{page}#{anchor}": where
        for (page, anchor), where in cited.items()
        if not (DOCS / page).exists() or anchor not in sections(DOCS / page)
    }
    assert missing == {}


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in tracked_text_files()
        for needle in OUTSIDE
        if needle in path.read_text(errors="replace")
    ]
    assert found == []


def test_the_ledger_section_names_every_state() -> None:
    text = (DOCS / "architecture.md").read_text()
    ledger = text.split("### Ledger states and keys", 1)[1].split("\n## ", 1)[0]
    for value in (*State, *AttemptState):
        assert f"`{value}`" in ledger, value

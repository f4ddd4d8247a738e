"""The ledger's schema: which layout of the data in Redis a release reads and writes.

The data carries its schema version in a stamp (``ff:schema``: the version, the release
that stamped it, when, and what the data was before). Every process reads it as it starts
(``fulfillment/ledger/migrations.py`` then decides what to do):

* **the same version** as this release's (:data:`config.version.LEDGER_SCHEMA`): it runs;
* **no stamp, no key of the ledger**: an empty Redis, stamped with this release's version;
* **no stamp, but data**: what 0.1.0 wrote (it kept no stamp), schema :data:`UNVERSIONED`;
* **an older version**: migrated, at start when every pending migration is one the older
  release's processes can run beside (online), else by ``fulfill migrate``;
* **a newer version**: the process stops with one line and touches nothing
  (:class:`NewerSchema`): a downgrade is refused, never half-done.

``docs/upgrading.md`` is the operator's side of this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.version import LEDGER_SCHEMA, __version__
from fulfillment.ledger.queries import LedgerReader

UNVERSIONED = 1
"""The schema of data without a stamp: 0.1.0's, the only release that kept none."""

EXIT_CODE = 4
"""How a process (or ``fulfill``) exits when the data is of a schema it cannot use as is."""

_RELEASE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,39}")
_WHOLE = re.compile(r"[0-9]{1,9}")


def whole_number(text: str) -> int | None:
    """``text`` as a version number (ASCII digits only), or None."""
    return int(text) if _WHOLE.fullmatch(text) else None


@dataclass(frozen=True)
class Stamp:
    """The schema of the data in one Redis, as read."""

    version: int | None
    """The stamped version; None when there is no stamp (or it is not a number)."""
    data: bool = True
    """Whether the Redis holds any key of the ledger (looked at only without a stamp)."""
    release: str = ""
    """The release that stamped it (checked: a version-like string, else '')."""
    at: float = 0.0
    before: str = ""
    """What the data was before the stamp: 'empty', 'unversioned' or the previous version."""

    @property
    def schema(self) -> int | None:
        """The data's schema: the stamp's, :data:`UNVERSIONED` for data without one, None
        for an empty Redis."""
        if self.version is not None:
            return self.version
        return UNVERSIONED if self.data else None

    @property
    def found(self) -> str:
        """The stamp's version as the stamp script compares it ('' = no stamp)."""
        return "" if self.version is None else str(self.version)

    @property
    def label(self) -> str:
        """What the data is, in words: 'empty', 'unversioned' or its version."""
        if self.version is not None:
            return str(self.version)
        return "unversioned" if self.data else "empty"

    def describe(self) -> str:
        """One phrase for a log line: ``schema 1 (stamped by 0.2.0)``."""
        if self.version is None:
            return "no schema stamp (data of 0.1.0)" if self.data else "empty"
        by = f" (stamped by {self.release})" if self.release else ""
        return f"schema {self.version}{by}"


def read_stamp(reader: LedgerReader) -> Stamp:
    """The data's stamp; without one, whether the Redis holds any key of the ledger. One
    round trip with a stamp, a ``SCAN`` more without (an empty Redis, or 0.1.0's data)."""
    fields = reader.schema_stamp()
    raw = fields.get("version", "")
    version = whole_number(raw)
    if version is None:
        return Stamp(None, data=reader.holds_data())
    release = fields.get("release", "")
    try:
        at = float(fields.get("at") or 0)
    except ValueError:
        at = 0.0
    return Stamp(
        version,
        release=release if _RELEASE.fullmatch(release) else "",
        at=at,
        before=fields.get("from", "") if _RELEASE.fullmatch(fields.get("from", "")) else "",
    )


class SchemaError(Exception):
    """This release cannot use the data as it is; ``str()`` is the one line a process prints."""


class NewerSchema(SchemaError):
    """The data is of a schema newer than this release reads: refused, nothing touched."""

    def __init__(self, stamp: Stamp, reads: int = LEDGER_SCHEMA) -> None:
        super().__init__(stamp, reads)
        self.stamp = stamp
        self.reads = reads

    def __str__(self) -> str:
        by = f", stamped by {self.stamp.release}" if self.stamp.release else ""
        return (
            f"this Redis holds data of schema {self.stamp.version}{by}; this release "
            f"({__version__}) reads up to {self.reads}: run that release or a later one, or "
            "restore the backup taken before the upgrade (docs/upgrading.md#rolling-back)"
        )


class MigrationNeeded(SchemaError):
    """The data is of an older schema that this process must not migrate by itself."""

    def __init__(self, stamp: Stamp, to: int, why: str) -> None:
        super().__init__(stamp, to, why)
        self.stamp = stamp
        self.to = to
        self.why = why

    def __str__(self) -> str:
        return (
            f"this Redis holds data of schema {self.stamp.schema}; this release "
            f"({__version__}) needs schema {self.to}: {self.why}, then run `fulfill migrate` "
            "(docs/upgrading.md#migrations)"
        )

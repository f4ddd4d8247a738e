"""A subscription's lines for a period, split into the posts Pax8 takes.

Pax8 takes at most 50 lines a post (``api-limitations``), and a post for a summaryKey
replaces the lines posted earlier the same day for it unless ``overwriteSameDayUsage=false``
(``overwrite-same-day-usage``). So:

* every summary's first lines go out in an **overwrite** batch (several summaries share one
  as far as they fit; a summary of more than 50 fills the room left), which wipes whatever
  an earlier run of the same day left for that key;
* a summary with more than 50 lines continues in **append** batches, which carry only such
  continuations, and are posted after every overwrite batch.

Posting the batches again from the first one is always safe: the overwrite batches reset
each summary's day before the appends add to it. That is how a job resumes after a crash,
a timeout or a 5xx (whose batch may or may not have been stored); only a 429 (Pax8 stored
nothing) resumes at the batch it refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pax8.usage import MAX_LINES_PER_POST, UsageLine


@dataclass(frozen=True)
class Batch:
    """One post: its lines and whether it replaces the day's earlier lines of its summaries."""

    lines: tuple[UsageLine, ...]
    overwrite: bool


def batches(lines: Sequence[UsageLine], size: int = MAX_LINES_PER_POST) -> list[Batch]:
    """The posts for ``lines`` (see the module docstring), in the order they must go."""
    if size < 1:
        raise ValueError("a batch holds at least one line")
    summaries: dict[str, list[UsageLine]] = {}
    for line in lines:
        summaries.setdefault(line.summary_key, []).append(line)
    starts: list[list[UsageLine]] = []
    continuations: list[UsageLine] = []
    for group in summaries.values():
        room = size - len(starts[-1]) if starts else 0
        if len(group) > room and (len(group) <= size or room == 0):
            starts.append([])  # it fits a batch of its own, or nothing is left here
            room = size
        starts[-1].extend(group[:room])
        continuations.extend(group[room:])
    out = [Batch(tuple(batch), overwrite=True) for batch in starts]
    for i in range(0, len(continuations), size):
        out.append(Batch(tuple(continuations[i : i + size]), overwrite=False))
    return out

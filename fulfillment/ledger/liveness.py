"""Which worker holds which message, and which workers are alive: the writer of those keys.

Kombu's Redis transport keeps every delivered, unacknowledged message in one hash
(:data:`~fulfillment.ledger.keys.BROKER_UNACKED`) and brings it back only after the
visibility timeout, an hour by default, because it does not know who holds it. Here each
delivery also records its holder (``ff:broker:holders``: tag → ``"<worker id> <ref>"``) in
the same script, and each worker's main process beats (``ff:workers``: worker id → last
heartbeat, Redis's own time). A worker whose heartbeat is older than
``WORKER_LOST_AFTER_SECONDS`` is gone: its messages go back to their queues at once
(``worker/broker.py`` sweeps, ``worker/liveness.py`` beats). Every write is a script in
``lua/`` that gets all of its keys in ``KEYS``, like the ledger's own; the scripts run on
whichever client the caller passes (kombu's channel client for the deliveries).

A worker id is ``<node name>/<pid>/<nonce>``: a replacement started with the same host name
and pid (a container restarted) is never mistaken for the one that died.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from redis.commands.core import Script

from fulfillment.ledger.keys import BROKER_UNACKED, BROKER_UNACKED_INDEX, Keys
from fulfillment.ledger.records import as_text, parse_refs
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.scripts import lua_source
from fulfillment.ledger.states import State

_SCRIPTS = ("heartbeat", "bury", "deliver", "settle_delivery", "restore_delivery")


@dataclass(frozen=True)
class Look:
    """What a heartbeat that took the look-for-lost-messages throttle saw."""

    live: frozenset[str]
    """The workers whose heartbeat is recent."""
    queued: list[Ref]
    """Records queued for longer than the lost-after time, oldest first."""
    provisioning: list[Ref]
    """Records provisioning for longer than the lost-after time, oldest first."""


@dataclass(frozen=True)
class Beat:
    """The answer of one heartbeat."""

    now: float
    """Redis's time."""
    dead: frozenset[str] = frozenset()
    """Workers gone and not swept yet: their messages are still held in their name."""
    look: Look | None = None
    """Set when this heartbeat is the one that looks for lost messages this time round."""


def holder_value(worker: str, member: str) -> str:
    """The value ``ff:broker:holders`` keeps for a delivery to ``worker`` of ``member``'s
    task (the worker id never holds a space: :func:`worker_id`)."""
    return f"{worker} {member}"


def worker_id(node: str, pid: int, nonce: str) -> str:
    """A worker process's id: its Celery node name, pid and a nonce of this start, each
    reduced to letters, digits and ``@._-`` (it is shown to operators and is no key)."""

    def clean(text: str) -> str:
        return "".join(c if c.isascii() and (c.isalnum() or c in "@._-") else "_" for c in text)

    return f"{clean(node)[:80] or 'worker'}/{pid}/{clean(nonce)[:16]}"


@dataclass
class Liveness:
    """The heartbeat and delivery scripts on ``client`` under ``keys``.

    ``unacked`` / ``unacked_index``: kombu's key names (its channel's ``unacked_key`` and
    ``unacked_index_key``; the defaults are kombu's defaults).
    """

    client: redis.Redis
    keys: Keys = field(default_factory=Keys)
    unacked: str = BROKER_UNACKED
    unacked_index: str = BROKER_UNACKED_INDEX
    _scripts: dict[str, Script] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in _SCRIPTS:
            self._scripts[name] = self.client.register_script(lua_source(name, record=False))

    @property
    def _delivery_keys(self) -> list[str]:
        return [self.unacked, self.unacked_index, self.keys.holders]

    # -- heartbeats ----------------------------------------------------------------------

    def beat(
        self,
        worker: str,
        lost_after: float,
        look_every: float,
        *,
        look: bool = True,
        most: int = 100,
    ) -> Beat:
        """Record that ``worker`` lives; learn which workers are gone (heartbeat older than
        ``lost_after`` seconds) and, with ``look``, at most once per ``look_every`` seconds
        among all workers, which records have been in flight that long (:class:`Look`)."""
        keys = [
            self.keys.workers,
            self.keys.workers_gone,
            self.keys.liveness_scan,
            self.keys.state(State.QUEUED),
            self.keys.state(State.PROVISIONING),
        ]
        args: list[str | float] = [
            worker, lost_after, max(1, int(look_every * 1000)), most, "1" if look else "0"
        ]  # fmt: skip
        now, dead, looked = self._scripts["heartbeat"](keys=keys, args=args)
        found = None
        if looked:
            live, queued, provisioning = looked
            found = Look(
                frozenset(as_text(w) for w in live), parse_refs(queued), parse_refs(provisioning)
            )
        return Beat(float(as_text(now)), frozenset(as_text(w) for w in dead), found)

    def bury(self, worker: str, lost_after: float) -> bool:
        """Move ``worker`` to the gone ones if its heartbeat is older than ``lost_after``
        (0: now, a worker leaving) and it holds no message any more."""
        keys = [self.keys.workers, self.keys.workers_gone, self.keys.holders]
        return bool(self._scripts["bury"](keys=keys, args=[worker, lost_after]))

    # -- deliveries (run with the broker channel's client) ------------------------------

    def deliver(self, tag: str, entry: str, holder: str, now: float, client: redis.Redis) -> None:
        """Record a delivery: kombu's unacked ``entry`` for ``tag``, delivered at ``now``
        (the consumer's clock), held by ``holder`` (:func:`holder_value`)."""
        keys = self._delivery_keys
        self._scripts["deliver"](keys=keys, args=[tag, now, entry, holder], client=client)

    def settle(self, tag: str, worker: str, client: redis.Redis) -> bool:
        """Forget an acknowledged delivery, unless another worker holds it now (False)."""
        keys = self._delivery_keys
        return bool(self._scripts["settle_delivery"](keys=keys, args=[tag, worker], client=client))

    def restore(
        self,
        tag: str,
        holder: str,
        queues: Sequence[str],
        message: str,
        front: bool,
        client: redis.Redis,
    ) -> bool:
        """Put the delivery ``tag`` back on ``queues`` (its queue, kombu's lookup) as
        ``message``, if ``holder`` still holds it ("" = whoever does); ``front``: where it
        is taken next, else behind what waits. False: nothing to put back, or another
        worker holds it now."""
        keys = [*self._delivery_keys, *queues]
        args = [tag, holder, message, "front" if front else "back"]
        return bool(self._scripts["restore_delivery"](keys=keys, args=args, client=client))

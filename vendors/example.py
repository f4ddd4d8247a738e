"""``example``: a reference vendor that keeps tenants and subscriptions in Redis.

It behaves like a small real SaaS back office, so the demo and the tests see honest
``Fail`` results for honest reasons:

* NetNew / TrialCreate refuse a company domain another company already uses, a missing
  domain or subscription id, a quantity below 1, and a malformed ``adminEmail`` detail;
* Update, Deprovision, ChangeProduct, TrialConvert and Renewal refuse a subscription
  this vendor does not know (or one already cancelled); TrialConvert refuses a paid one;
  ChangeProduct refuses a move to the product the subscription already has;
* PartnerEnrollment needs a partner id and enrolls each partner once;
* its usage source (:meth:`ExampleAdapter.usage`) reports, per tenant, the seats of a
  subscription and the storage it grew day by day (and, past 50 seats, a line per device),
  computed from the subscription alone, so a test can ask it again for a period's closing
  totals and compare them with what Pax8 holds;
* CloudBlue stop and start (``suspend``/``resume``) refuse an unknown or cancelled
  subscription; stopping a stopped one (or starting a running one) changes nothing and
  succeeds, as the platform expects of a repeated operation. A CloudBlue order keeps the
  limit of every product (``limits``; -1 is unlimited, CloudBlue's convention, and a limit
  below it is refused).

Every outcome is stored under the order's idempotency key in the same Redis transaction
as the change it made, so a call repeated after a crash returns the first outcome and
changes nothing. ``provisionings`` lists every change, for counting in tests.

Two round trips an order, whatever its type (it was six, with WATCH/MULTI/EXEC): one
pipeline reads the idempotency record and every hash the rule looks at; the rule decides in
Python from that snapshot; one script (:data:`COMMIT`) applies the rule's writes and stores
the outcome only if nothing it read has changed meanwhile (optimistic concurrency, what
WATCH does, without its three extra round trips), and otherwise the order is decided again
from a fresh read. The rules stay plain Python a vendor can copy; only the commit is Lua,
and it knows nothing of them.
Simulated and production orders live in separate namespaces, and so does each route of a
routes file that names it (``vendor:example:<route>:...``; the route ``default`` keeps the
namespace of a deployment without one): two routes are two vendors' back offices. A
ChangeProduct whose previous route is another one (the old product lives in another backend)
takes the subscription over from that route's namespace, as docs/routes.md asks of a vendor:
created here with the new product, marked moved there, in one transaction. Its database is
the Redis of ``REDIS_URL`` (a vendor's own store, not the worker's: it does not follow
``REDIS_SENTINELS``; a production vendor keeps its data where it always has).

Long on purpose: it is one vendor's back office, every rule of every request type and its
usage source, which read best as the one class a vendor copies from.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from config.routes import DEFAULT_ROUTE, Backend
from config.settings import Settings
from pax8.usage import UsageLine
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import PermanentVendorError, TransientVendorError
from vendors.usage import UsageQuery

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Snapshot = dict[str, dict[str, str]]
"""The hashes a rule reads, by key, as one read found them (``{}``: no such key)."""
Write = tuple[str, dict[str, str]]
"""One change a rule makes: the fields to set in a hash (``HSET key mapping``)."""
Change = Callable[[Snapshot], tuple[Provisioned, list[Write]]]
Update = dict[str, str] | Callable[[dict[str, str]], dict[str, str]]
UNLIMITED = -1
TRIES = 20
"""How often an order is decided again when another order changed what it read."""

COMMIT = """
-- The example vendor's commit: store an order's outcome (and its writes) if no outcome is
-- stored under its key yet and every hash it was decided from is as it was read.
-- KEYS: the idempotency record, the change log, the hashes read, then the hashes written.
-- ARGV: the outcome, the log entry ('' for a refusal), how many hashes were read; then per
-- hash read its field count and field/value pairs; then per hash written the same.
local stored = redis.call('GET', KEYS[1])
if stored then return {'stored', stored} end
local reads, at = tonumber(ARGV[3]), 4
for i = 3, 2 + reads do
  local fields = tonumber(ARGV[at])
  if redis.call('HLEN', KEYS[i]) ~= fields then return {'changed'} end
  for j = at + 1, at + 2 * fields, 2 do
    if redis.call('HGET', KEYS[i], ARGV[j]) ~= ARGV[j + 1] then return {'changed'} end
  end
  at = at + 1 + 2 * fields
end
for i = 3 + reads, #KEYS do
  local fields = tonumber(ARGV[at])
  if fields > 0 then redis.call('HSET', KEYS[i], unpack(ARGV, at + 1, at + 2 * fields)) end
  at = at + 1 + 2 * fields
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[2]) end
return {'ok'}
"""


class _StoredRefusal(PermanentVendorError):
    """A refusal already stored under the order's key (by the commit, or a replay)."""


def _short_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class ExampleAdapter(VendorAdapter):
    """A reference vendor with real rules, state in Redis."""

    name = "example"

    def __init__(
        self,
        settings: Settings | None = None,
        client: redis.Redis | None = None,
        route: str = DEFAULT_ROUTE,
    ) -> None:
        super().__init__(settings)
        url = settings.redis_url if settings else "redis://localhost:6379/0"
        self.redis: redis.Redis = client or redis.Redis.from_url(url, decode_responses=True)
        self.route = route
        self._commit = self.redis.register_script(COMMIT)

    @classmethod
    def for_backend(cls, settings: Settings, backend: Backend) -> ExampleAdapter:
        """The example vendor of one route: a back office of its own (see the module
        docstring)."""
        adapter = cls(settings, route=backend.route)
        adapter.backend = backend
        return adapter

    # -- plumbing ----------------------------------------------------------------------

    def namespace(self, simulation: bool, route: str | None = None) -> str:
        """Redis key prefix of the simulated or the production vendor (of ``route``: this
        instance's by default)."""
        route = self.route if route is None else route
        base = "vendor:example" if route == DEFAULT_ROUTE else f"vendor:example:{route}"
        return f"{base}:{'sim' if simulation else 'prod'}"

    def provisionings(self, simulation: bool) -> list[dict[str, Any]]:
        """Every change this vendor made, oldest first."""
        entries: Any = self.redis.lrange(f"{self.namespace(simulation)}:log", 0, -1)
        return [json.loads(entry) for entry in entries]

    def subscription(self, simulation: bool, subscription_id: str) -> dict[str, str]:
        """The stored record of one subscription ({} when unknown)."""
        return _strings(self.redis.hgetall(f"{self.namespace(simulation)}:sub:{subscription_id}"))

    def handle(self, order: Order) -> Provisioned:
        """Apply the order, or return the outcome stored for its key (see the module
        docstring). A refusal from the order alone (a missing field) is stored too, if
        nothing is stored yet: a repeat refuses the same way."""
        try:
            return super().handle(order)
        except PermanentVendorError as exc:
            if not isinstance(exc, _StoredRefusal):
                self.redis.set(self._idem_key(order), json.dumps({"error": exc.message}), nx=True)
            raise

    def _idem_key(self, order: Order) -> str:
        return f"{self.namespace(order.is_simulation)}:idem:{order.idempotency_key}"

    def _apply(self, order: Order, read: list[str], change: Change) -> Provisioned:
        """Decide ``order`` with ``change`` from a snapshot of the hashes ``read``, then
        commit its writes with the outcome, unless another order changed one of them
        meanwhile: then decide again. Two round trips (see the module docstring)."""
        idem = self._idem_key(order)
        for _ in range(TRIES):
            pipe = self.redis.pipeline(transaction=False)  # one round trip, no MULTI
            pipe.get(idem)
            for key in read:
                pipe.hgetall(key)
            stored, *hashes = pipe.execute()
            if stored is not None:
                return _replay(str(stored))
            found = {key: _strings(fields) for key, fields in zip(read, hashes, strict=True)}
            try:
                result, writes = change(found)
            except PermanentVendorError as exc:
                reply = self._store(order, found, [], {"error": exc.message})
                if reply[0] == "ok":
                    raise _StoredRefusal(exc.message) from exc
            else:
                reply = self._store(order, found, writes, {"ok": _dump(result)})
                if reply[0] == "ok":
                    return result
            if reply[0] == "stored":  # a repeat of this order got there first
                return _replay(str(reply[1]))
        raise TransientVendorError(
            f"The vendor's records changed under this order {TRIES} times in a row; try again."
        )

    def _store(
        self, order: Order, found: Snapshot, writes: list[Write], outcome: dict[str, Any]
    ) -> list[str]:
        """Run :data:`COMMIT`: ``["ok"]``, ``["stored", outcome]`` or ``["changed"]``."""
        ns = self.namespace(order.is_simulation)
        entry = self._log_entry(order) if "ok" in outcome else ""
        args: list[str | int] = [json.dumps(outcome), entry, len(found)]
        args += _flat(list(found.values())) + _flat([fields for _, fields in writes])
        keys = [self._idem_key(order), f"{ns}:log", *found, *(key for key, _ in writes)]
        reply: list[str] = self._commit(keys=keys, args=args)
        return reply

    @staticmethod
    def _log_entry(order: Order) -> str:
        return json.dumps(
            {
                "key": order.idempotency_key,
                "type": order.type.value,
                "requestId": order.request_id,
                "detailId": order.detail_id,
                "at": time.time(),
            }
        )

    # -- rules -------------------------------------------------------------------------

    def net_new(self, order: Order) -> Provisioned:
        """Create a tenant and a subscription for the company."""
        return self._create(order, status="active")

    def trial_create(self, order: Order) -> Provisioned:
        """Create a tenant and a trial subscription."""
        return self._create(order, status="trial")

    def _create(self, order: Order, status: str) -> Provisioned:
        request = order.request
        ns = self.namespace(order.is_simulation)
        sub_id = request.subscription_id
        domain = (request.company_domain or "").strip().lower()
        if not sub_id:
            raise PermanentVendorError("The order has no subscriptionId; Pax8 must send one.")
        if not domain:
            raise PermanentVendorError(
                "The company has no domain; add the company's email domain and resubmit."
            )
        quantity = request.quantity if request.quantity is not None else 1
        limits = _limits(order)
        if limits is None and quantity < 1:
            raise PermanentVendorError(f"Quantity must be at least 1 (got {quantity}).")
        email = order.details.get("adminEmail")
        if email is not None and not _EMAIL.match(str(email)):
            raise PermanentVendorError(
                f"The admin email {email!r} is not a valid email address; correct it and "
                "resubmit the order."
            )
        sub_key, domain_key = f"{ns}:sub:{sub_id}", f"{ns}:domain:{domain}"

        def change(found: Snapshot) -> tuple[Provisioned, list[Write]]:
            owner = found[domain_key]
            if owner and owner.get("company_id") != (request.company_id or ""):
                raise PermanentVendorError(
                    f"Unable to provision the subscription because the domain {domain} is "
                    "already in use by another customer. Use a different domain or contact "
                    "the vendor's support."
                )
            if found[sub_key]:
                raise PermanentVendorError(
                    f"Subscription {sub_id} already exists at the vendor; it cannot be "
                    "created twice."
                )
            tenant = owner.get("tenant_id") if owner else None
            tenant = tenant or _short_id("tn")
            fields = {
                "subscription_id": sub_id,
                "external_id": _short_id("sub"),
                "tenant_id": tenant,
                "company_id": request.company_id or "",
                "partner_id": request.partner_id or "",
                "domain": domain,
                "product_id": request.product_id or "",
                "quantity": str(quantity),
                "status": status,
                "trial_end": request.trial_end_date.isoformat() if request.trial_end_date else "",
                "created_at": str(time.time()),
            }
            if limits is not None:
                fields["limits"] = json.dumps(limits)
            owner_fields = {"company_id": request.company_id or "", "tenant_id": tenant}
            writes: list[Write] = [
                (sub_key, fields),
                (domain_key, owner_fields),
            ]
            metadata: dict[str, Any] = {"tenantId": tenant, "status": status, "quantity": quantity}
            if limits is not None:
                metadata["limits"] = limits
            result = Provisioned(
                subscription_id=fields["external_id"], company_id=tenant, metadata=metadata
            )
            return result, writes

        return self._apply(order, [sub_key, domain_key], change)

    def _existing(
        self, order: Order, check: Callable[[dict[str, str]], None], update: Update
    ) -> Provisioned:
        """Change a known subscription after ``check`` accepts its current record
        (``update``: the fields to set, or a function of the record that returns them)."""
        ns = self.namespace(order.is_simulation)
        sub_id = order.request.subscription_id or order.details.get(
            "externalProvisionerSubscriptionId"
        )
        if not sub_id:
            raise PermanentVendorError("The order names no subscription; Pax8 must send one.")
        sub_key = f"{ns}:sub:{sub_id}"

        def change(found: Snapshot) -> tuple[Provisioned, list[Write]]:
            record = found[sub_key]
            if not record:
                raise PermanentVendorError(
                    f"Subscription {sub_id} is unknown to the vendor; it must be created "
                    "(NetNew or TrialCreate) first."
                )
            if record.get("status") == "cancelled":
                raise PermanentVendorError(f"Subscription {sub_id} was cancelled already.")
            if record.get("status") == "moved":
                raise PermanentVendorError(
                    f"Subscription {sub_id} moved to the vendor's {record.get('moved_to')} "
                    "system with a product change; this one no longer holds it."
                )
            check(record)
            fields = update(record) if callable(update) else update
            merged = {**record, **fields}
            metadata: dict[str, Any] = {
                "status": merged["status"],
                "quantity": int(merged["quantity"]),
            }
            if merged.get("limits"):
                metadata["limits"] = json.loads(merged["limits"])
            result = Provisioned(
                subscription_id=merged["external_id"],
                company_id=merged.get("tenant_id") or None,
                metadata=metadata,
            )
            writes: list[Write] = [(sub_key, fields)] if fields else []
            return result, writes

        return self._apply(order, [sub_key], change)

    def update(self, order: Order) -> Provisioned:
        """Change the quantity of a known subscription (a CloudBlue limit change: the limit
        of every product it names)."""
        limits = _limits(order)
        if limits is not None:

            def new_limits(record: dict[str, str]) -> dict[str, str]:
                merged = {**json.loads(record.get("limits") or "{}"), **limits}
                first = order.request.quantity
                quantity = record.get("quantity", "1") if first is None else str(first)
                return {"limits": json.dumps(merged), "quantity": quantity}

            return self._existing(order, lambda record: None, new_limits)
        quantity = order.request.quantity
        if quantity is None or quantity < 1:
            raise PermanentVendorError(f"Quantity must be at least 1 (got {quantity}).")
        return self._existing(order, lambda record: None, {"quantity": str(quantity)})

    def suspend(self, order: Order) -> Provisioned:
        """Stop a known subscription (a stopped one stays stopped: success, no change)."""

        def stop(record: dict[str, str]) -> dict[str, str]:
            if record.get("status") == "suspended":
                return {}
            return {"status": "suspended", "status_before_suspend": record.get("status", "")}

        return self._existing(order, lambda record: None, stop)

    def resume(self, order: Order) -> Provisioned:
        """Start a stopped subscription again (a running one: success, no change)."""

        def start(record: dict[str, str]) -> dict[str, str]:
            if record.get("status") != "suspended":
                return {}
            return {
                "status": record.get("status_before_suspend") or "active",
                "status_before_suspend": "",
            }

        return self._existing(order, lambda record: None, start)

    def deprovision(self, order: Order) -> Provisioned:
        """Cancel a known subscription."""
        return self._existing(order, lambda record: None, {"status": "cancelled"})

    def trial_convert(self, order: Order) -> Provisioned:
        """Turn a known trial into a paid subscription."""

        def check(record: dict[str, str]) -> None:
            if record.get("status") != "trial":
                raise PermanentVendorError(
                    f"Subscription {record['subscription_id']} is not a trial; only a trial "
                    "can be converted."
                )

        return self._existing(order, check, {"status": "active"})

    def change_product(self, order: Order) -> Provisioned:
        """Move a known subscription to another product (taking it over from the previous
        route's back office when the old product lives there)."""
        product = order.request.product_id
        if not product:
            raise PermanentVendorError("The order names no new productId.")
        if order.previous_route and order.previous_route != order.route:
            return self._move_in(order, product)

        def check(record: dict[str, str]) -> None:
            if record.get("product_id") == product:
                raise PermanentVendorError(
                    f"Subscription {record['subscription_id']} already has product {product}."
                )

        return self._existing(order, check, {"product_id": product})

    def _move_in(self, order: Order, product: str) -> Provisioned:
        """A ChangeProduct from another route's product: the subscription lives in that
        route's back office so far. Create it here with the new product and mark it moved
        there, in one transaction with the idempotency record: what docs/routes.md asks of
        a vendor whose products live in different backends."""
        sub_id = order.request.subscription_id
        if not sub_id:
            raise PermanentVendorError("The order names no subscription; Pax8 must send one.")
        here = f"{self.namespace(order.is_simulation)}:sub:{sub_id}"
        there = f"{self.namespace(order.is_simulation, order.previous_route)}:sub:{sub_id}"

        def change(found: Snapshot) -> tuple[Provisioned, list[Write]]:
            record = found[there]
            if not record or record.get("status") in ("cancelled", "moved"):
                raise PermanentVendorError(
                    f"Subscription {sub_id} is unknown to the vendor's {order.previous_route} "
                    "system it would move from (or was cancelled there); it must be created "
                    "(NetNew or TrialCreate) first."
                )
            if found[here]:
                raise PermanentVendorError(
                    f"Subscription {sub_id} exists in both of the vendor's systems; contact "
                    "the vendor's support."
                )
            moved = {**record, "product_id": product, "moved_from": order.previous_route}
            writes: list[Write] = [
                (here, moved),
                (there, {"status": "moved", "moved_to": self.route}),
            ]
            result = Provisioned(
                subscription_id=record["external_id"],
                company_id=record.get("tenant_id") or None,
                metadata={
                    "status": record.get("status", "active"),
                    "quantity": int(record.get("quantity") or 1),
                    "movedFrom": order.previous_route,
                },
            )
            return result, writes

        return self._apply(order, [here, there], change)

    def renewal(self, order: Order) -> Provisioned:
        """Renew an active subscription's term."""

        def check(record: dict[str, str]) -> None:
            if record.get("status") != "active":
                raise PermanentVendorError(
                    f"Subscription {record['subscription_id']} is {record.get('status')}; only "
                    "an active subscription can be renewed."
                )

        months = order.request.term_months or 12
        return self._existing(order, check, {"renewed_months": str(months)})

    def partner_enrollment(self, order: Order) -> Provisioned:
        """Enroll a partner (once)."""
        partner = order.request.partner_id
        if not partner:
            raise PermanentVendorError("The enrollment names no partnerId.")
        ns = self.namespace(order.is_simulation)
        key = f"{ns}:partner:{partner}"

        def change(found: Snapshot) -> tuple[Provisioned, list[Write]]:
            if found[key]:
                raise PermanentVendorError(f"Partner {partner} is enrolled already.")
            enrollment, account = _short_id("enr"), _short_id("pa")
            fields = {
                "enrollment_id": enrollment,
                "account_id": account,
                "name": order.request.partner_name or "",
            }
            result = Provisioned(
                partner_id=account,
                partner_enrollment_id=enrollment,
                metadata={"partnerAccount": account},
            )
            return result, [(key, fields)]

        return self._apply(order, [key], change)

    # -- usage ---------------------------------------------------------------------------

    def usage(self, query: UsageQuery) -> list[UsageLine]:
        """The period's totals of one subscription, as of ``query.as_of``.

        Per tenant (summaryKey: the tenant id, shown as the company's domain): the seats
        (``Users``), the storage grown so far (``GB``: a rate per day that depends on the
        subscription, times the days of the period up to now, or up to its deprovisioning),
        and from 51 seats on a second summary with a line per device (``Device-days``).
        """
        record = self.subscription(query.is_simulation, query.subscription_id)
        if not record:
            raise PermanentVendorError(f"Subscription {query.subscription_id} is unknown here.")
        days = _days_used(query)
        if days == 0:
            return []
        seats = int(record.get("quantity") or 1)
        tenant = record.get("tenant_id") or query.subscription_id
        name = record.get("domain") or tenant
        product = record.get("product_id") or query.product_id or "example-product"
        digest = hashlib.sha256(query.subscription_id.encode()).digest()
        per_day = (digest[0] % 9 + 1) * 0.5

        def line(key: str, display: str, quantity: float, unit: str) -> UsageLine:
            return UsageLine(
                summary_key=key,
                summary_display_name=display,
                quantity=quantity,
                product_id=product,
                unit_of_measurement=unit,
            )

        lines = [
            line(tenant, name, seats, "Users"),
            line(tenant, name, round(per_day * days, 3), "GB"),
        ]
        if seats > 50:
            lines += [
                line(f"{tenant}-devices", f"{name} devices", days, "Device-days")
                for _ in range(seats)
            ]
        return lines


def _days_used(query: UsageQuery) -> int:
    """Days of the period the subscription was used up to ``as_of`` (or its end)."""
    year, month = (int(part) for part in query.billing_period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    until = min(query.as_of, end, query.ended_at or end)
    return max(0, math.ceil((until - start).total_seconds() / 86400))


def _limits(order: Order) -> dict[str, int] | None:
    """A CloudBlue order's limits, product by product (None for a Pax8 order)."""
    if order.cloudblue is None:
        return None
    limits: dict[str, int] = {}
    for product in order.cloudblue.products:
        if product.limit is None:
            continue
        if product.limit < UNLIMITED:
            raise PermanentVendorError(
                f"The limit of {product.label} must be -1 (unlimited) or more "
                f"(got {product.limit})."
            )
        limits[product.label] = product.limit
    return limits


def _flat(hashes: list[dict[str, str]]) -> list[str | int]:
    """The commit script's arguments for ``hashes``: each one's field count, then its
    field/value pairs."""
    args: list[str | int] = []
    for fields in hashes:
        args.append(len(fields))
        for field, value in fields.items():
            args += [field, value]
    return args


def _strings(mapping: Any) -> dict[str, str]:
    """redis-py types hash replies loosely; this client decodes responses to str."""
    return {str(key): str(value) for key, value in dict(mapping).items()}


def _dump(result: Provisioned) -> dict[str, Any]:
    return {
        "subscription_id": result.subscription_id,
        "partner_id": result.partner_id,
        "company_id": result.company_id,
        "partner_enrollment_id": result.partner_enrollment_id,
        "metadata": result.metadata,
    }


def _replay(stored: str) -> Provisioned:
    data = json.loads(stored)
    if "error" in data:
        raise _StoredRefusal(data["error"])
    return Provisioned(**data["ok"])

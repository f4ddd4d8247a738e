"""Check a vendor's endpoint against the ``http`` adapter's contract (``vendors/http-api.yaml``).

``fulfill check-vendor URL`` runs :class:`Checker` against a staging endpoint: it sends
simulated orders (``isSimulation: true``, ids it makes up, so nothing real is touched) the
way the worker sends them (the same adapter, headers, body and deadline), judges each answer
the way the worker would, and reports one :class:`Finding` per rule:

1. every order type is answered (a success or a refusal the worker understands, in time);
2. the same key twice gives the same outcome and one provisioning (the answer ids match);
3. two concurrent calls with one key do not both provision (``409``, or the same answer);
4. a key reused with another body gets ``422`` (or the first call's answer), never new work;
5. a 4xx carries a message a partner can act on;
6. answers come within the timeout;
7. with a token: a call without it is refused.

A vendor that stores its idempotency key only when a call finishes passes 2 and fails 3;
one that ignores the key fails 2, 3 and 4.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pax8.errors import parse_retry_after
from pax8.models import (
    Commitment,
    CommitmentTerm,
    ProvisionAttempt,
    ProvisionDetail,
    ProvisionRequest,
    RequestType,
)
from vendors.answers import GENERIC_MESSAGES, Answer, Judgement, Verdict, judge, message_of
from vendors.base import Order
from vendors.errors import VendorError
from vendors.http import HttpAdapter

MESSAGE_MAX = 500
"""What Pax8 keeps of a Fail's message."""

_TRACE = re.compile(r"Traceback \(most recent call last\)|\bat [\w$.]+\(|Exception:|\w+Error:")
_WORD = re.compile(r"[^\W\d_]{2,}")


class NoAnswer(Exception):
    """The endpoint did not answer the first order at all: nothing else can be judged."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True)
class Finding:
    """One rule: passed or not, and what was seen."""

    rule: str
    passed: bool
    seen: str


@dataclass
class Exchange:
    """One call and what came of it, judged as the worker would."""

    label: str
    order: Order
    status: int | None = None
    seconds: float = 0.0
    message: str = ""
    retry_after: float | None = None
    ids: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    """Why the worker could not use the answer (no answer, an id Pax8 refuses...)."""
    judgement: Judgement | None = None
    """What the worker makes of the answer (:func:`vendors.answers.judge`), as it would."""

    @property
    def success(self) -> bool:
        """An answer the worker reports as Success (a 2xx it can read)."""
        return self.verdict is Verdict.SUCCESS and not self.problem

    @property
    def refusal(self) -> bool:
        """An answer the worker reports as Fail with the vendor's message."""
        return self.verdict is Verdict.REFUSED

    @property
    def verdict(self) -> Verdict | None:
        """The worker's verdict, None without an answer."""
        return self.judgement.verdict if self.judgement is not None else None

    def summary(self) -> str:
        """``NetNew 200`` / ``Update 404 (Subscription … is unknown)`` / ``NetNew no answer``."""
        if self.status is None:
            return f"{self.label} {self.problem}"
        text = f"{self.label} {self.status}"
        if self.problem:
            return f"{text} ({self.problem})"
        if self.message and not self.success:
            return f"{text} ({_clip(self.message, 60)})"
        return text


def unactionable(message: str, status: int) -> str | None:
    """Why a refusal's message is no help to a partner, or None when it is."""
    text = message.strip()
    if not text:
        return "no message"
    if len(text) > MESSAGE_MAX:
        return f"{len(text)} characters (Pax8 keeps {MESSAGE_MAX})"
    if "<html" in text.lower():
        return "an HTML page"
    if text[0] in "{[":
        return "JSON, not a sentence"
    if _TRACE.search(text):
        return "a stack trace"
    bare = text.lower().strip(" .!:")
    if bare in GENERIC_MESSAGES or bare == httpx.codes.get_reason_phrase(status).lower():
        return "a status phrase, not a reason"
    if len(_WORD.findall(text)) < 3:
        return "too short to act on"
    return None


class Checker:
    """Runs every rule against one endpoint."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self.token, self.timeout = url, token, timeout
        self._transport = transport
        self.adapter = HttpAdapter(url=url, token=token, timeout=timeout, transport=transport)
        self.exchanges: list[Exchange] = []

    def close(self) -> None:
        """Close the adapter's connections."""
        self.adapter.close()

    # -- calls -----------------------------------------------------------------------------

    def call(self, label: str, order: Order, adapter: HttpAdapter | None = None) -> Exchange:
        """Send ``order`` as the worker does and judge the answer."""
        exchange = Exchange(label, order)
        started = time.monotonic()
        try:
            answer = (adapter or self.adapter).send(order)
        except httpx.TimeoutException:
            exchange.problem = f"no complete answer within {self.timeout:g}s"
        except httpx.TransportError as exc:
            exchange.problem = f"no answer ({type(exc).__name__})"
        except VendorError as exc:  # an answer that could not be read at all
            exchange.problem = exc.message
        else:
            self._judge(exchange, answer)
        exchange.seconds = time.monotonic() - started
        self.exchanges.append(exchange)
        return exchange

    def _judge(self, exchange: Exchange, answer: Answer) -> None:
        """Judge ``answer`` with the worker's own rule (:func:`vendors.answers.judge`)."""
        exchange.status = answer.status
        exchange.judgement = judgement = judge(answer, self.adapter.max_answer_bytes)
        verdict = judgement.verdict
        exchange.message = message_of(answer, fallback="")
        exchange.retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if verdict is Verdict.MISCONFIGURED:
            exchange.problem = judgement.fix
        elif verdict is Verdict.REFUSED:
            exchange.message = message_of(answer)
        elif verdict is Verdict.BUSY and answer.status != 409:
            exchange.problem = "retried later: the vendor is failing"
        elif verdict is Verdict.SUCCESS:
            try:
                exchange.ids = self.adapter.outcome(exchange.order, answer).external_ids()
            except VendorError as exc:  # its metadata is more than a result may carry
                exchange.problem = exc.message
            except ValueError as exc:  # an external id Pax8 would refuse
                exchange.problem = str(exc)

    # -- rules -----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        """Every rule, in order."""
        lifecycle = self._lifecycle()
        findings = [
            self._answered(lifecycle),
            self._same_key_twice(lifecycle[0]),
            self._concurrent(),
            self._reused_key(lifecycle[0]),
            self._messages(),
            self._in_time(),
        ]
        if self.token:
            findings.append(self._token_required())
        return findings

    def _lifecycle(self) -> list[Exchange]:
        """One order of every type, in an order a vendor can carry out."""
        orders = OrderMaker()
        net_new = self.call("NetNew", orders.make(RequestType.NET_NEW))
        if net_new.status is None:
            raise NoAnswer(f"the first order got {net_new.problem}")
        seats = orders.subscription
        saved = dict(net_new.ids)
        exchanges = [net_new]
        for kind in (
            RequestType.UPDATE,
            RequestType.CHANGE_PRODUCT,
            RequestType.RENEWAL,
            RequestType.DEPROVISION,
        ):
            exchanges.append(self.call(kind.value, orders.make(kind, seats, saved)))
        trial = self.call("TrialCreate", orders.make(RequestType.TRIAL_CREATE))
        exchanges.append(trial)
        converted = orders.make(RequestType.TRIAL_CONVERT, orders.subscription, dict(trial.ids))
        exchanges.append(self.call("TrialConvert", converted))
        exchanges.append(
            self.call("PartnerEnrollment", orders.make(RequestType.PARTNER_ENROLLMENT))
        )
        return exchanges

    def _answered(self, lifecycle: Sequence[Exchange]) -> Finding:
        rule = "every order type is answered"
        bad = [e for e in lifecycle if not (e.success or e.refusal)]
        return Finding(rule, not bad, ", ".join(e.summary() for e in lifecycle))

    def _same_key_twice(self, first: Exchange) -> Finding:
        rule = "the same key twice: same outcome, one provisioning"
        again = self.call("NetNew (repeat)", first.order)
        if first.status is None or again.status is None:
            return Finding(rule, False, f"{first.summary()}; then {again.summary()}")
        if first.status != again.status:
            return Finding(rule, False, f"{first.status}, then {again.status} for the same key")
        if not first.success:
            same = first.message == again.message
            seen = f"{first.status} twice" + ("" if same else ", with different messages")
            return Finding(rule, same, seen)
        if not first.ids:
            return Finding(
                rule, False, "no ids in the answers: one provisioning cannot be told from two"
            )
        if first.ids != again.ids:
            return Finding(
                rule, False, f"provisioned twice: {_ids(first.ids)}, then {_ids(again.ids)}"
            )
        return Finding(rule, True, f"{first.status} twice, the same ids ({_ids(first.ids)})")

    def _concurrent(self) -> Finding:
        rule = "two concurrent calls with one key: not both provisioned"
        order = OrderMaker().make(RequestType.NET_NEW)
        # A second connection pool, so the two calls really leave together.
        other = HttpAdapter(
            url=self.url, token=self.token, timeout=self.timeout, transport=self._transport
        )
        gate = threading.Barrier(2)
        pair: list[Exchange] = []

        def send(label: str, adapter: HttpAdapter) -> None:
            gate.wait(timeout=10)
            pair.append(self.call(label, order, adapter))

        try:
            threads = [
                threading.Thread(target=send, args=(label, adapter))
                for label, adapter in (("NetNew (a)", self.adapter), ("NetNew (b)", other))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(self.timeout + 15)
        finally:
            other.close()
        done = [e for e in pair if e.success]
        conflicts = [e for e in pair if e.status == 409]
        if len(done) == 2:
            if done[0].ids and done[0].ids == done[1].ids:
                return Finding(rule, True, f"the same answer twice ({_ids(done[0].ids)})")
            return Finding(
                rule, False, f"both provisioned: {_ids(done[0].ids)} and {_ids(done[1].ids)}"
            )
        if len(done) == 1 and len(conflicts) == 1:
            return self._after_conflict(rule, done[0], conflicts[0])
        return Finding(rule, False, ", ".join(e.summary() for e in pair))

    def _after_conflict(self, rule: str, first: Exchange, conflict: Exchange) -> Finding:
        """One call got 409: once the key is finished, its answer must be the first one's."""
        deadline = time.monotonic() + self.timeout
        wait = min(conflict.retry_after or 1.0, self.timeout)
        while True:
            time.sleep(wait)  # Retry-After, as the worker honours it (this is no worker)
            again = self.call("NetNew (after 409)", conflict.order)
            if again.status != 409 or time.monotonic() > deadline:
                break
        if not again.success:
            return Finding(rule, False, f"409, then {again.summary()}")
        if again.ids != first.ids:
            return Finding(
                rule, False, f"409, then provisioned again: {_ids(first.ids)} and {_ids(again.ids)}"
            )
        return Finding(rule, True, f"409 to the second, then the first answer ({_ids(first.ids)})")

    def _reused_key(self, first: Exchange) -> Finding:
        rule = "a key reused with another body: 422, not provisioned again"
        request = first.order.request
        changed = replace(
            first.order,
            request=request.model_copy(update={"quantity": (request.quantity or 1) + 1}),
        )
        again = self.call("NetNew (other body)", changed)
        if again.status == 422:
            return Finding(rule, True, "422")
        if first.success and again.success and again.ids == first.ids:
            return Finding(
                rule, True, f"{again.status}, the first answer again (the draft asks for 422)"
            )
        return Finding(
            rule, False, again.summary() + (f", ids {_ids(again.ids)}" if again.ids else "")
        )

    def _messages(self) -> Finding:
        rule = "a 4xx carries a message a partner can act on"
        orders = OrderMaker()
        unknown = orders.make(RequestType.UPDATE, f"never-{uuid.uuid4()}", {})
        probe = self.call("Update (unknown subscription)", unknown)
        refusals = [e for e in self.exchanges if e.refusal]
        if not refusals:
            return Finding(
                rule,
                False,
                f"no 4xx to judge: an Update of a subscription the vendor never saw got "
                f"{probe.summary().removeprefix(probe.label + ' ')}",
            )
        poor = [(e, unactionable(e.message, e.status or 0)) for e in refusals]
        bad = [(e, why) for e, why in poor if why]
        if bad:
            return Finding(rule, False, "; ".join(f"{e.label} {e.status}: {why}" for e, why in bad))
        sample = refusals[-1]
        return Finding(
            rule, True, f"{len(refusals)} seen, e.g. {sample.status}: {_clip(sample.message, 160)}"
        )

    def _in_time(self) -> Finding:
        rule = "answers come within the timeout"
        late = [e for e in self.exchanges if e.status is None]
        if late:
            return Finding(rule, False, ", ".join(f"{e.label}: {e.problem}" for e in late))
        slowest = max(self.exchanges, key=lambda e: e.seconds)
        return Finding(
            rule,
            True,
            f"slowest {slowest.seconds:.2f}s ({slowest.label}) of {self.timeout:g}s",
        )

    def _token_required(self) -> Finding:
        rule = "a call without the token is refused"
        anonymous = HttpAdapter(url=self.url, timeout=self.timeout, transport=self._transport)
        try:
            exchange = self.call(
                "NetNew (no token)", OrderMaker().make(RequestType.NET_NEW), anonymous
            )
        finally:
            anonymous.close()
        passed = exchange.status in (401, 403)
        return Finding(rule, passed, exchange.summary())


class OrderMaker:
    """Simulated orders with fresh ids, shaped like Pax8's."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now
        self.subscription = ""
        self.product = str(uuid.uuid4())

    def make(
        self,
        kind: RequestType,
        subscription: str | None = None,
        saved: dict[str, str] | None = None,
    ) -> Order:
        """An order of ``kind``; a subscription order for ``subscription`` when given."""
        request_id, detail_id = str(uuid.uuid4()), str(uuid.uuid4())
        if subscription is None:
            subscription = str(uuid.uuid4())
        self.subscription = subscription
        tag = uuid.uuid4().hex[:10]
        fields: dict[str, Any] = {
            "id": request_id,
            "type": kind,
            "partner_id": str(uuid.uuid4()),
            "partner_name": "check-vendor partner",
            "company_id": str(uuid.uuid4()),
            "company_name": f"check-vendor company {tag}",
            "company_domain": f"check-{tag}.example.com",
            "product_id": self.product,
            "product_name": "check-vendor product",
            "quantity": 1,
            "subscription_id": subscription,
            "billing_term": "Monthly",
            "created_date": self.now(),
        }
        if kind is RequestType.UPDATE:
            fields["quantity"] = 2
        elif kind is RequestType.CHANGE_PRODUCT:
            fields["old_product_id"], fields["product_id"] = self.product, str(uuid.uuid4())
        elif kind is RequestType.RENEWAL:
            fields["commitment"] = Commitment(term=CommitmentTerm(months=12))
        elif kind is RequestType.TRIAL_CREATE:
            fields["trial_end_date"] = self.now() + timedelta(days=30)
            fields["trial_auto_converts"] = False
        elif kind is RequestType.PARTNER_ENROLLMENT:
            fields["partner_enrollment_id"] = str(uuid.uuid4())
            fields["partner_domain"] = f"partner-{tag}.example.com"
        created = self.now()
        return Order(
            type=kind,
            request=ProvisionRequest(**fields),
            detail=ProvisionDetail(
                id=detail_id,
                provision_request_id=request_id,
                details=dict(saved or {}),
                created_date=created,
            ),
            attempt=ProvisionAttempt(
                id=str(uuid.uuid4()),
                provision_detail_id=detail_id,
                status="Acknowledged",
                created_date=created,
            ),
            is_simulation=True,
            raw={},
        )


def all_passed(findings: Sequence[Finding]) -> bool:
    """Whether every rule passed."""
    return all(finding.passed for finding in findings)


def _ids(ids: dict[str, str]) -> str:
    return ", ".join(ids.values()) or "no ids"


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."

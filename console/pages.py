"""The console's pages: orders (filters, paging, search), one order, dead and failed orders
with Replay, reconcile now, the webhook configurations, and the doctor's checks. Reads go
through :mod:`fulfillment.views.orders`; Replay follows :mod:`fulfillment.workflow.replay`
(the CLI's rules); the doctor is :mod:`fulfillment.doctor` (``fulfill doctor``'s checks)."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from config.scrub import FILTERED
from console.context import console
from console.csrf import check as check_csrf
from console.filters import AGES, TYPES, Filters
from fulfillment.doctor import store as doctor_store
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.run import run_checks
from fulfillment.ledger import AmbiguousId
from fulfillment.ledger.refs import Ref, Scope, is_id
from fulfillment.ledger.states import State
from fulfillment.views.orders import OrderQuery, describe, errors, holder_line, search
from fulfillment.views.webhook_configs import recent_deliveries, webhook_view
from fulfillment.workflow.reconcile import reconcile
from fulfillment.workflow.replay import ReplayRefused, replay
from pax8.errors import Pax8Error
from worker.factory import create_celery
from worker.inspection import CeleryWorkers

bp = Blueprint("pages", __name__)

# Keys whose values a raw payload shows as [Filtered] whatever a vendor or partner named
# them (adminPassword, apiToken, clientSecret...), on top of the scrubbing of every secret.
_SECRET_KEY = re.compile(r"(?i)pass(word|wd|phrase)?|secret|token|credential|api[-_]?key")
EXTERNAL_ID_LABELS = {
    "externalProvisionerSubscriptionId": "Subscription",
    "externalProvisionerCompanyId": "Company",
    "externalProvisionerPartnerId": "Partner",
    "externalProvisionerPartnerEnrollmentId": "Partner enrollment",
}
REPLAYABLE = frozenset({State.DEAD, State.FAILED, State.PROVISIONED, State.REPORTED})


def _ref(scope: str, request_id: str) -> Ref:
    """The order a URL names, or 404 (nothing from the URL reaches Redis unchecked)."""
    if scope not in {s.value for s in Scope} or not is_id(request_id):
        abort(404, description="No such order.")
    return Ref(Scope(scope), request_id)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The orders page."""
    return redirect(url_for(".orders"))


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    """Browsers ask for it whatever the page says."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.get("/orders")
def orders() -> ResponseReturnValue:
    """Orders, newest first, with filters and paging."""
    filters = Filters.parse(request.args)
    ledger = console().services.ledger
    page = search(ledger, filters.query())
    return render_template(
        "orders.html",
        page=page,
        filters=filters,
        counts=ledger.counts(),
        types=TYPES,
        scopes=[scope.value for scope in Scope],
        ages=list(AGES),
    )


@bp.get("/find")
def find() -> ResponseReturnValue:
    """Go to the order with this id (in whichever scope has it)."""
    wanted = request.args.get("id", "").strip()
    if not wanted:
        return redirect(url_for(".orders"))
    if not is_id(wanted):
        flash("An order id is 1-128 letters, digits, '.', '_' or '-'.", "error")
        return redirect(url_for(".orders"))
    found = console().services.ledger.find(wanted)
    if len(found) == 1:
        record = found[0]
        return redirect(url_for(".order", scope=record.ref.scope, request_id=record.id))
    if not found:
        flash(f"No order {wanted} in the ledger.", "error")
        return redirect(url_for(".orders"))
    return render_template("found.html", wanted=wanted, records=found)


@bp.get("/orders/<scope>/<request_id>")
def order(scope: str, request_id: str) -> ResponseReturnValue:
    """One order: record, external ids, attempts and results, history, errors, payload."""
    ref = _ref(scope, request_id)
    ctx = console()
    view = describe(
        ctx.services.ledger, ref, lost_after=ctx.services.settings.worker_lost_after_seconds
    )
    if view is None:
        abort(404, description=f"No order {request_id} in scope {scope}.")
    record = ctx.services.ledger.get(ref)
    assert record is not None
    labels = {name: EXTERNAL_ID_LABELS.get(name, name) for name in record.external_ids}
    return render_template(
        "order.html",
        ref=ref,
        view=view,
        record=record,
        errors=errors(view["history"]),
        labels=labels,
        payload=_payload(record.payload),
        replayable=record.state in REPLAYABLE,
        needs_force=record.state is State.REPORTED and record.outcome != "Fail",
        held=_held(view["holding"]),
    )


def _held(holding: dict[str, Any] | None) -> list[tuple[str, str, float | None]]:
    """(what, who and whether alive, since) for each holder of an order in flight."""
    if holding is None:
        return []
    now = holding["now"]
    rows: list[tuple[str, str, float | None]] = []
    claim = holding["claim"]
    if claim is not None:
        who = holder_line(claim["worker"], claim["heartbeat"], now)
        rows.append(("Claimed by", who, claim["since"]))
    for message in holding["messages"]:
        what = "Its message, held by" if claim is not None else "Its task message, taken by"
        rows.append((what, holder_line(message["worker"], message["heartbeat"], now),
                     message["since"]))  # fmt: skip
    if claim is None and not holding["messages"]:
        rows.append(("Its task message", "waiting in its queue for a worker", None))
    return rows


@bp.post("/orders/<scope>/<request_id>/replay")
def replay_order(scope: str, request_id: str) -> ResponseReturnValue:
    """Replay, by the rules of ``fulfill replay``."""
    check_csrf()
    ref = _ref(scope, request_id)
    services = console().services
    try:
        done = replay(
            services.ledger,
            services.publisher,
            lambda _simulation: services.pax8,
            ref,
            force=request.form.get("force") == "yes",
        )
    except ReplayRefused as exc:
        flash(f"Not replayed: {exc}", "error")
    except (Pax8Error, AmbiguousId) as exc:
        flash(f"Not replayed: {exc}", "error")
    else:
        flash(done.message, "ok")
    return redirect(url_for(".order", scope=ref.scope, request_id=ref.id))


@bp.get("/attention")
def attention() -> ResponseReturnValue:
    """Dead and failed orders (what needs an operator), each with Replay."""
    ledger = console().services.ledger
    dead = search(ledger, OrderQuery(state=State.DEAD, per_page=200)).records
    failed = search(ledger, OrderQuery(state=State.FAILED, per_page=200)).records
    return render_template("attention.html", dead=dead, failed=failed, counts=ledger.counts())


@bp.route("/reconcile", methods=["GET", "POST"])
def reconcile_now() -> ResponseReturnValue:
    """The last reconciliation, and a button to run one now (here, at once: the beat's run
    with the throttle off, under the same lock)."""
    ctx = console()
    summary = None
    error = ""
    if request.method == "POST":
        check_csrf()
        settings = ctx.settings
        if not (settings.has_credentials(False) or settings.has_credentials(True)):
            error = "No Pax8 credentials are configured: set PAX8_CLIENT_ID/_SECRET."
        else:
            try:
                summary = reconcile(
                    ctx.services.ledger,
                    ctx.services.pax8,
                    ctx.services.publisher,
                    ctx.services.policies.reconcile,
                    force=True,
                    routes=settings.routes,
                ).as_dict()
            except Pax8Error as exc:
                error = f"Pax8: {exc}"
    runs, last = ctx.services.ledger.reconcile_runs()
    return render_template(
        "reconcile.html",
        summary=summary,
        error=ctx.scrubber.text(error),
        runs=runs,
        last=last,
        interval=ctx.settings.reconcile_interval_seconds,
    )


@bp.get("/webhooks")
def webhooks() -> ResponseReturnValue:
    """The webhook configurations at Pax8 and which configured credentials are live."""
    ctx = console()
    views = []
    deliveries = recent_deliveries(ctx.services.ledger)
    for simulation in (False, True):
        view = webhook_view(ctx.services.pax8, ctx.settings, simulation, deliveries)
        view.error = ctx.scrubber.text(view.error)
        views.append(view)
    return render_template("webhooks.html", views=views, header=ctx.settings.pax8_webhook_header)


@bp.route("/doctor", methods=["GET", "POST"])
def doctor() -> ResponseReturnValue:
    """The doctor's last scheduled run, and a button to run every check now (here, with the
    console's settings; the result is stored as the last run)."""
    ctx = console()
    ledger = ctx.services.ledger
    fresh = False
    if request.method == "POST":
        check_csrf()
        celery = create_celery(ctx.settings)
        checker = Doctor(ctx.settings, ctx.services, CeleryWorkers(celery))
        try:
            doctor_store.save(ledger, run_checks(checker))
        finally:
            checker.close()
            celery.close()
        fresh = True
    return render_template(
        "doctor.html",
        report=doctor_store.load(ledger),
        fresh=fresh,
        interval=ctx.settings.doctor_interval_seconds,
    )


def _payload(raw: str) -> str:
    """The raw notification, pretty and with every secret filtered."""
    scrubber = console().scrubber
    try:
        data = json.loads(raw)
    except ValueError:
        return scrubber.text(raw)
    return json.dumps(scrubber.data(_redact(data)), indent=2, ensure_ascii=False)


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return FILTERED
    if isinstance(value, dict):
        return {
            key: FILTERED
            if isinstance(key, str) and _SECRET_KEY.search(key)
            else _redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, depth + 1) for item in value]
    return value

"""The sandbox's state: provisioners, webhook configurations, requests and everything under them.

State lives in memory only, in this process: it is lost when the sandbox stops, and
``POST /sandbox/reset`` clears it on demand. Each environment ("production", "simulation")
has its own provisioner, webhook configurations, requests, details, attempts, results and
remembered external ids; an id of one environment is a 404 in the other.

One lock guards everything. Every method takes it for its whole duration, never calls out
(no HTTP, no sleeping) while holding it, and hands back copies of what can still change
(attempts), so callers may serialize the answer without the lock.

Errors are raised as :class:`~sandbox.errors.ApiError` with Pax8's status codes, because
the Pax8 routes are the store's main client.

Long on purpose: the one lock makes the store one class, and Pax8's semantics (one result per
acknowledged attempt, attempts under details, each environment apart) are easiest to check
where every rule that keeps them is in one place.
"""

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import ENVIRONMENTS, SandboxConfig
from sandbox.errors import ApiError, invalid, not_found
from sandbox.orders import OrderTemplate, new_id, now_iso
from sandbox.results import ResultInput

ATTEMPT_STATUSES = ("Issued", "Acknowledged", "Failed")

# Result field -> the request field it is remembered under (pax8-provision-detail.txt).
EXTERNAL_ID_KEYS = {
    "externalProvisionerSubscriptionId": "subscriptionId",
    "externalProvisionerPartnerId": "partnerId",
    "externalProvisionerCompanyId": "companyId",
    "externalProvisionerPartnerEnrollmentId": "partnerEnrollmentId",
}

_RESULT_KEYS: dict[str, Any] = {
    "id": None,
    "provisionAttemptId": None,
    "status": None,
    "errorMessage": None,
    "metadata": None,
    **dict.fromkeys(EXTERNAL_ID_KEYS),
}


@dataclass(frozen=True)
class Webhook:
    """One immutable webhook configuration of a provisioner."""

    id: str
    url: str
    header: str
    credential: str
    created_date: str
    preset: bool = False

    def created(self) -> dict[str, Any]:
        """The CreatedWebhook shape: the only time the credential is shown in full."""
        return {
            "id": self.id,
            "url": self.url,
            "sharedSecret": {"header": self.header, "credential": self.credential},
            "createdDate": self.created_date,
        }

    def masked(self) -> dict[str, Any]:
        """The Webhook shape, with all but the last four characters of the credential hidden."""
        masked = "********" + self.credential[-4:]
        return {
            "id": self.id,
            "url": self.url,
            "sharedSecret": {"header": self.header, "credential": masked},
            "createdDate": self.created_date,
        }


@dataclass
class _Attempt:
    wire: dict[str, Any]
    request_id: str
    result_id: str | None = None


@dataclass
class _Request:
    wire: dict[str, Any]
    detail_ids: list[str] = field(default_factory=list)
    attempt_ids: list[str] = field(default_factory=list)
    result_ids: list[str] = field(default_factory=list)
    succeeded: bool = False


@dataclass
class _Result:
    wire: dict[str, Any]
    request_id: str
    created_date: str


@dataclass
class _Environment:
    name: str
    provisioner: dict[str, Any]
    webhooks: list[Webhook] = field(default_factory=list)
    requests: dict[str, _Request] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, _Attempt] = field(default_factory=dict)
    results: dict[str, _Result] = field(default_factory=dict)
    # (request field, its value) -> external id, e.g. ("subscriptionId", "...") -> "sub-1".
    external_ids: dict[tuple[str, str], str] = field(default_factory=dict)

    def clear_data(self) -> None:
        self.requests.clear()
        self.details.clear()
        self.attempts.clear()
        self.results.clear()
        self.external_ids.clear()

    def unfulfilled(self, record: _Request) -> bool:
        # Open while nothing succeeded and the latest attempt (if any) has no result yet:
        # after a Fail the request waits for the partner's fix (a new detail and attempt).
        if record.succeeded:
            return False
        if not record.attempt_ids:
            return True
        return self.attempts[record.attempt_ids[-1]].result_id is None


@dataclass(frozen=True)
class Created:
    """The ids of what one order (or one new detail or attempt) created."""

    environment: str
    request_id: str
    detail_id: str
    attempt_id: str | None


@dataclass(frozen=True)
class Target:
    """Everything needed to deliver one Provision Notification, read under the lock."""

    environment: str
    request_id: str
    attempt_id: str
    body: dict[str, Any]
    webhook_id: str | None
    url: str | None
    header: str | None
    credential: str | None


class Store:
    """All sandbox state, thread-safe (see the module docstring)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        vendor_id = new_id()
        names = {"production": "Sandbox Vendor", "simulation": "Sandbox Vendor (simulation)"}
        created = now_iso()
        self._envs = {
            env: _Environment(
                env,
                {"id": new_id(), "createdDate": created, "vendorId": vendor_id, "name": names[env]},
            )
            for env in ENVIRONMENTS
        }
        self._deliveries: list[dict[str, Any]] = []
        self._install_presets()

    # -- provisioners and webhooks -------------------------------------------------------

    def provisioner_id(self, env: str) -> str:
        """The provisioner id of ``env`` (fixed for the life of the process)."""
        return str(self._envs[env].provisioner["id"])

    def provisioners(self, env: str) -> list[dict[str, Any]]:
        """The provisioners visible to ``env``: exactly its own."""
        return [dict(self._envs[env].provisioner)]

    def provisioner(self, env: str, provisioner_id: str) -> dict[str, Any]:
        """One provisioner; 404 unless it is ``env``'s."""
        self._check_provisioner(env, provisioner_id)
        return dict(self._envs[env].provisioner)

    def webhooks(self, env: str, provisioner_id: str) -> list[dict[str, Any]]:
        """Every webhook configuration of the provisioner, oldest first, credentials masked."""
        self._check_provisioner(env, provisioner_id)
        with self._lock:
            return [w.masked() for w in self._envs[env].webhooks]

    def webhook(self, env: str, provisioner_id: str, webhook_id: str) -> dict[str, Any]:
        """One webhook configuration, credential masked; 404 when unknown."""
        self._check_provisioner(env, provisioner_id)
        with self._lock:
            for hook in self._envs[env].webhooks:
                if hook.id == webhook_id:
                    return hook.masked()
        raise not_found("webhook", webhook_id)

    def latest_webhook(self, env: str, provisioner_id: str) -> dict[str, Any]:
        """The most recently created webhook configuration; 404 when there is none."""
        self._check_provisioner(env, provisioner_id)
        with self._lock:
            hooks = self._envs[env].webhooks
            if not hooks:
                raise ApiError(404, "no webhook configuration for this provisioner")
            return hooks[-1].masked()

    def create_webhook(
        self, env: str, url: str, header: str, credential: str | None = None
    ) -> Webhook:
        """A new webhook configuration; the credential is generated unless given."""
        hook = Webhook(
            id=new_id(),
            url=url,
            header=header,
            credential=credential or secrets.token_urlsafe(32),
            created_date=now_iso(),
            preset=credential is not None,
        )
        with self._lock:
            self._envs[env].webhooks.append(hook)
        return hook

    def _install_presets(self) -> None:
        for env in ENVIRONMENTS:
            preset = self._config.preset_webhook(env)
            if preset is not None:
                self.create_webhook(env, preset[0], self._config.webhook_header, preset[1])

    def _check_provisioner(self, env: str, provisioner_id: str) -> None:
        if provisioner_id != self._envs[env].provisioner["id"]:
            raise not_found("provisioner", provisioner_id)

    # -- reading requests and what hangs under them ----------------------------------------

    def requests(self, env: str) -> list[dict[str, Any]]:
        """Every provision request of ``env``, oldest first."""
        with self._lock:
            return [r.wire for r in self._envs[env].requests.values()]

    def unfulfilled(self, env: str) -> list[dict[str, Any]]:
        """The requests still waiting for a result (see ``_Environment.unfulfilled``)."""
        with self._lock:
            state = self._envs[env]
            return [r.wire for r in state.requests.values() if state.unfulfilled(r)]

    def request(self, env: str, request_id: str) -> dict[str, Any]:
        """One provision request; 404 when unknown in ``env``."""
        with self._lock:
            return self._request(env, request_id).wire

    def details(self, env: str, request_id: str) -> list[dict[str, Any]]:
        """Every detail of a request, oldest first."""
        with self._lock:
            state = self._envs[env]
            return [state.details[d] for d in self._request(env, request_id).detail_ids]

    def detail(self, env: str, request_id: str, detail_id: str) -> dict[str, Any]:
        """One detail of a request."""
        with self._lock:
            if detail_id not in self._request(env, request_id).detail_ids:
                raise not_found("provision detail", detail_id)
            return self._envs[env].details[detail_id]

    def latest_detail(self, env: str, request_id: str) -> dict[str, Any]:
        """The newest detail of a request."""
        with self._lock:
            ids = self._request(env, request_id).detail_ids
            if not ids:
                raise ApiError(404, f"provision request {request_id} has no detail")
            return self._envs[env].details[ids[-1]]

    def attempts(
        self, env: str, request_id: str, detail_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every attempt of a request (optionally of one detail), oldest first."""
        with self._lock:
            state = self._envs[env]
            found = (state.attempts[a].wire for a in self._request(env, request_id).attempt_ids)
            return [
                dict(a) for a in found if detail_id is None or a["provisionDetailId"] == detail_id
            ]

    def attempt(self, env: str, request_id: str, attempt_id: str) -> dict[str, Any]:
        """One attempt of a request."""
        with self._lock:
            if attempt_id not in self._request(env, request_id).attempt_ids:
                raise not_found("provision attempt", attempt_id)
            return dict(self._envs[env].attempts[attempt_id].wire)

    def latest_attempt(self, env: str, request_id: str) -> dict[str, Any]:
        """The newest attempt of a request."""
        with self._lock:
            ids = self._request(env, request_id).attempt_ids
            if not ids:
                raise ApiError(404, f"provision request {request_id} has no attempt")
            return dict(self._envs[env].attempts[ids[-1]].wire)

    def results(
        self, env: str, request_id: str, attempt_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every result of a request (optionally of one attempt), oldest first."""
        with self._lock:
            state = self._envs[env]
            found = (state.results[r].wire for r in self._request(env, request_id).result_ids)
            return [r for r in found if attempt_id is None or r["provisionAttemptId"] == attempt_id]

    def result(self, env: str, request_id: str, result_id: str) -> dict[str, Any]:
        """One result of a request."""
        with self._lock:
            if result_id not in self._request(env, request_id).result_ids:
                raise not_found("provision result", result_id)
            return self._envs[env].results[result_id].wire

    def latest_result(self, env: str, request_id: str) -> dict[str, Any]:
        """The newest result of a request."""
        with self._lock:
            ids = self._request(env, request_id).result_ids
            if not ids:
                raise ApiError(404, f"provision request {request_id} has no result")
            return self._envs[env].results[ids[-1]].wire

    def _request(self, env: str, request_id: str) -> _Request:
        record = self._envs[env].requests.get(request_id)
        if record is None:
            raise not_found("provision request", request_id)
        return record

    def attempts_by_id(self, env: str, attempt_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The attempts with these ids in ``env`` (those a reset removed are left out)."""
        with self._lock:
            found = (self._envs[env].attempts.get(a) for a in attempt_ids)
            return [dict(a.wire) for a in found if a is not None]

    def subscription_of(
        self, env: str, subscription_id: str | None = None, external_id: str | None = None
    ) -> str | None:
        """The Pax8 subscription id a Usage API call names in ``env``: one of its provision
        requests carries it, or a Success result saved it as the vendor's
        ``externalProvisionerSubscriptionId``; None when unknown there."""
        with self._lock:
            state = self._envs[env]
            if external_id is not None:
                for (name, key), value in state.external_ids.items():
                    if name == "subscriptionId" and value == external_id:
                        return key
                return None
            for record in state.requests.values():
                if record.wire.get("subscriptionId") == subscription_id:
                    return subscription_id
        return None

    def environment_of(self, request_id: str) -> str:
        """Which environment a request lives in (for the control plane, which has no token)."""
        with self._lock:
            for env, state in self._envs.items():
                if request_id in state.requests:
                    return env
        raise not_found("provision request", request_id)

    def order_event(self, env: str, request_id: str, attempt_id: str | None) -> dict[str, Any]:
        """The ProvisionTestingOrderEvent of one attempt (or of the latest detail, if none)."""
        with self._lock:
            state = self._envs[env]
            record = self._request(env, request_id)
            event: dict[str, Any] = {"provisionRequest": record.wire}
            if attempt_id is not None:
                attempt = state.attempts[attempt_id].wire
                event["provisionDetail"] = state.details[attempt["provisionDetailId"]]
                event["provisionAttempt"] = dict(attempt)
            elif record.detail_ids:
                event["provisionDetail"] = state.details[record.detail_ids[-1]]
            event["isSimulation"] = env == "simulation"
            return event

    # -- creating ---------------------------------------------------------------------------

    def create_orders(
        self,
        env: str,
        template: OrderTemplate,
        count: int = 1,
        attempt_status: str | None = "Issued",
        error_detail: str | None = None,
        random_webhook_id: bool = False,
    ) -> list[Created]:
        """``count`` requests from one template, each with a detail and (unless
        ``attempt_status`` is None) one attempt; ids the template fixes must be new."""
        built = [template.build_request() for _ in range(count)]
        with self._lock:
            state = self._envs[env]
            for request in built:
                if "id" in template.request and self._exists(request["id"]):
                    raise ApiError(409, f"provision request {request['id']} already exists")
            if template.detail_id is not None and self._exists(template.detail_id):
                raise ApiError(409, f"provision detail {template.detail_id} already exists")
            created = []
            for request in built:
                record = _Request(request)
                state.requests[request["id"]] = record
                detail = self._add_detail(state, record, template.details, template.detail_id)
                attempt_id = None
                if attempt_status is not None:
                    attempt_id = self._add_attempt(
                        state,
                        record,
                        detail["id"],
                        attempt_status,
                        error_detail,
                        random_webhook_id=random_webhook_id,
                    )["id"]
                created.append(Created(env, request["id"], detail["id"], attempt_id))
            return created

    def add_detail(self, request_id: str, details: dict[str, Any]) -> Created:
        """A new detail (the partner fixed checkout data) and an Issued attempt for it."""
        env = self.environment_of(request_id)
        with self._lock:
            state = self._envs[env]
            record = self._request(env, request_id)
            detail = self._add_detail(state, record, details, None)
            attempt = self._add_attempt(state, record, detail["id"], "Issued", None)
            return Created(env, request_id, detail["id"], attempt["id"])

    def create_attempt(
        self,
        env: str,
        request_id: str,
        status: str,
        detail_id: str | None = None,
        error_detail: str | None = None,
    ) -> dict[str, Any]:
        """A new attempt for ``detail_id`` (default: the latest detail) of a request."""
        with self._lock:
            state = self._envs[env]
            record = self._request(env, request_id)
            if detail_id is None:
                if not record.detail_ids:
                    raise ApiError(400, f"provision request {request_id} has no detail")
                detail_id = record.detail_ids[-1]
            return dict(self._add_attempt(state, record, detail_id, status, error_detail))

    def _exists(self, ident: str) -> bool:
        return any(
            ident in s.requests or ident in s.details or ident in s.attempts
            for s in self._envs.values()
        )

    def _add_detail(
        self,
        state: _Environment,
        record: _Request,
        given: dict[str, Any],
        detail_id: str | None,
    ) -> dict[str, Any]:
        details: dict[str, Any] = {}
        # Saved external ids come back in every new detail (pax8-provision-detail.txt).
        for result_field, request_field in EXTERNAL_ID_KEYS.items():
            key = record.wire.get(request_field)
            remembered = state.external_ids.get((request_field, key)) if key else None
            if remembered is not None:
                details[result_field] = remembered
        details.update(given)
        detail = {
            "id": detail_id or new_id(),
            "provisionRequestId": record.wire["id"],
            "details": details,
            "createdDate": now_iso(),
        }
        state.details[detail["id"]] = detail
        record.detail_ids.append(detail["id"])
        return detail

    def _add_attempt(
        self,
        state: _Environment,
        record: _Request,
        detail_id: str,
        status: str,
        error_detail: str | None,
        random_webhook_id: bool = False,
    ) -> dict[str, Any]:
        attempt: dict[str, Any] = {"id": new_id(), "provisionDetailId": detail_id}
        if state.webhooks:
            attempt["webhookId"] = state.webhooks[-1].id
        elif random_webhook_id:
            attempt["webhookId"] = new_id()
        attempt["status"] = status
        if status == "Failed":
            attempt["errorDetail"] = error_detail or "not delivered"
        attempt["createdDate"] = now_iso()
        state.attempts[attempt["id"]] = _Attempt(attempt, record.wire["id"])
        record.attempt_ids.append(attempt["id"])
        return attempt

    def record_result(self, env: str, request_id: str, given: ResultInput) -> dict[str, Any]:
        """Store a ProvisionResult: one per acknowledged attempt of this request."""
        with self._lock:
            state = self._envs[env]
            record = self._request(env, request_id)
            attempt_id = given.attempt_id
            if attempt_id is None:
                if not record.attempt_ids:
                    raise invalid("provisionAttemptId", "the request has no attempt")
                attempt_id = record.attempt_ids[-1]
            if attempt_id not in record.attempt_ids:
                raise not_found("provision attempt", attempt_id)
            attempt = state.attempts[attempt_id]
            if attempt.wire["status"] != "Acknowledged":
                raise invalid(
                    "provisionAttemptId",
                    f"attempt {attempt_id} is {attempt.wire['status']}, not Acknowledged",
                )
            if attempt.result_id is not None:
                raise ApiError(
                    409,
                    f"provision attempt {attempt_id} already has a result ({attempt.result_id})",
                    {"field": "provisionAttemptId", "resultId": attempt.result_id},
                )
            wire: dict[str, Any] = {
                "id": new_id(),
                "provisionAttemptId": attempt_id,
                "status": given.status,
            }
            if given.error_message is not None:
                wire["errorMessage"] = given.error_message
            if given.metadata is not None:
                wire["metadata"] = given.metadata
            wire.update(given.external_ids)
            state.results[wire["id"]] = _Result(wire, request_id, now_iso())
            attempt.result_id = wire["id"]
            record.result_ids.append(wire["id"])
            if given.status == "Success":
                record.succeeded = True
                for result_field, value in given.external_ids.items():
                    key = record.wire.get(EXTERNAL_ID_KEYS[result_field])
                    if key:
                        state.external_ids[(EXTERNAL_ID_KEYS[result_field], key)] = value
            return wire

    # -- delivery bookkeeping ---------------------------------------------------------------

    def delivery_target(self, attempt_id: str) -> Target:
        """The notification of an attempt and where to send it (its webhook configuration)."""
        with self._lock:
            for env, state in self._envs.items():
                attempt = state.attempts.get(attempt_id)
                if attempt is None:
                    continue
                record = state.requests[attempt.request_id]
                body = {
                    "isSimulation": env == "simulation",
                    "provisionRequest": record.wire,
                    "provisionDetail": state.details[attempt.wire["provisionDetailId"]],
                    "provisionAttempt": dict(attempt.wire),
                }
                hook = next(
                    (w for w in state.webhooks if w.id == attempt.wire.get("webhookId")), None
                )
                if hook is None:
                    return Target(env, record.wire["id"], attempt_id, body, None, None, None, None)
                return Target(
                    env,
                    record.wire["id"],
                    attempt_id,
                    body,
                    hook.id,
                    hook.url,
                    hook.header,
                    hook.credential,
                )
        raise not_found("provision attempt", attempt_id)

    def set_attempt_status(self, attempt_id: str, status: str, error_detail: str | None) -> bool:
        """Record a delivery outcome; False when the attempt is gone (a reset happened)."""
        with self._lock:
            for state in self._envs.values():
                attempt = state.attempts.get(attempt_id)
                if attempt is not None:
                    attempt.wire["status"] = status
                    if error_detail is None:
                        attempt.wire.pop("errorDetail", None)
                    else:
                        attempt.wire["errorDetail"] = error_detail
                    return True
        return False

    def record_delivery(self, entry: dict[str, Any]) -> None:
        """Log one webhook delivery, unless its attempt was swept away by a reset meanwhile."""
        with self._lock:
            if any(entry["attemptId"] in s.attempts for s in self._envs.values()):
                self._deliveries.append(entry)

    def deliveries(
        self, env: str | None = None, request_id: str | None = None, attempt_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every delivery logged, oldest first, filtered."""
        with self._lock:
            return [
                dict(d)
                for d in self._deliveries
                if (env is None or d["environment"] == env)
                and (request_id is None or d["requestId"] == request_id)
                and (attempt_id is None or d["attemptId"] == attempt_id)
            ]

    # -- control plane ----------------------------------------------------------------------

    def reset(self, webhooks: bool = False) -> None:
        """Forget every request, detail, attempt, result, external id and delivery.

        With ``webhooks`` the webhook configurations go too, and the preset ones (from the
        command line) are created again, with new ids, as at start.
        """
        with self._lock:
            for state in self._envs.values():
                state.clear_data()
                if webhooks:
                    state.webhooks.clear()
            self._deliveries.clear()
        if webhooks:
            self._install_presets()

    def dump(self, env: str | None = None, request_id: str | None = None) -> list[dict[str, Any]]:
        """Every request with its details, attempts and results (for tests and demos)."""
        with self._lock:
            out = []
            for name, state in self._envs.items():
                if env is not None and name != env:
                    continue
                records: Iterable[_Request] = state.requests.values()
                if request_id is not None:
                    one = state.requests.get(request_id)
                    records = [one] if one is not None else []
                for record in records:
                    out.append(
                        {
                            "environment": name,
                            "unfulfilled": state.unfulfilled(record),
                            "provisionRequest": record.wire,
                            "details": [state.details[d] for d in record.detail_ids],
                            "attempts": [dict(state.attempts[a].wire) for a in record.attempt_ids],
                            "results": [state.results[r].wire for r in record.result_ids],
                        }
                    )
            return out

    def all_results(
        self, env: str | None = None, request_id: str | None = None, attempt_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every result posted, with its environment, request id and creation time."""
        with self._lock:
            out = []
            for name, state in self._envs.items():
                if env is not None and name != env:
                    continue
                for result in state.results.values():
                    if request_id is not None and result.request_id != request_id:
                        continue
                    if attempt_id is not None and result.wire["provisionAttemptId"] != attempt_id:
                        continue
                    # Every key present (null when not posted), so readers need no .get().
                    out.append(
                        {
                            "environment": name,
                            "provisionRequestId": result.request_id,
                            **_RESULT_KEYS,
                            **result.wire,
                            "createdDate": result.created_date,
                        }
                    )
            return out

    def summary(self) -> dict[str, Any]:
        """Provisioners and webhook configurations per environment (masked credentials)."""
        with self._lock:
            return {
                env: {
                    "provisioner": dict(state.provisioner),
                    "webhooks": [w.masked() | {"preset": w.preset} for w in state.webhooks],
                }
                for env, state in self._envs.items()
            }

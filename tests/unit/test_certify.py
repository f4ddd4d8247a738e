"""The certification's plan, its bodies, its judgement and its report, as plain functions (the
process tests drive the whole run through a real receiver and worker)."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from cli.certify import TerminalProgress
from fulfillment.certify.plan import (
    FailCase,
    Role,
    Step,
    Subject,
    order,
    parse_types,
    plan,
)
from fulfillment.certify.report import as_dict as report_dict
from fulfillment.certify.report import markdown
from fulfillment.certify.run import Certification, Certifier, OrderRun, Target
from pax8.auth import Credentials
from pax8.client import Pax8Client
from pax8.models import RequestType
from tests.unit.conftest import PAX8, Pax8World

T = RequestType


def test_a_type_asked_alone_gets_the_step_that_creates_its_subscription() -> None:
    steps = plan([T.RENEWAL, T.PARTNER_ENROLLMENT])
    assert [[(s.type, s.role) for s in sequence] for sequence in steps] == [
        [(T.NET_NEW, Role.SETUP), (T.RENEWAL, Role.REQUIRED)],
        [(T.PARTNER_ENROLLMENT, Role.REQUIRED)],
    ]
    every = plan(parse_types("all"))
    assert [[s.type.value for s in steps] for steps in every] == [
        ["NetNew", "Update", "ChangeProduct", "Renewal", "Deprovision"],
        ["TrialCreate", "TrialConvert"],
        ["PartnerEnrollment"],
    ]
    assert all(s.role is Role.REQUIRED for steps in every for s in steps)
    assert parse_types(" netnew,Update ,NETNEW") == [T.NET_NEW, T.UPDATE]
    with pytest.raises(ValueError, match="'Upgrade' is not a request type"):
        parse_types("NetNew,Upgrade")


def test_every_order_of_a_sequence_carries_its_subscription_and_the_vendor_ids() -> None:
    subject = Subject("tag")
    first = order(Step("subscription", T.NET_NEW, Role.REQUIRED), subject)
    fields = first.body["provisionRequest"]
    assert fields["type"] == "NetNew" and fields["companyDomain"] == "certify-tag.example.com"
    assert "provisionDetail" not in first.body
    subject.absorb(
        {"externalProvisionerSubscriptionId": "sub-1", "externalProvisionerCompanyId": ""}
    )
    change = order(Step("subscription", T.CHANGE_PRODUCT, Role.REQUIRED), subject,
                   request={"productName": "Mine"}, details={"adminEmail": "it@acme.test"},
                   new_product_id="p2")  # fmt: skip
    fields = change.body["provisionRequest"]
    assert fields["subscriptionId"] == subject.subscription_id
    assert fields["oldProductId"] == subject.product_id and fields["productId"] == "p2"
    assert fields["productName"] == "Mine"  # --request wins
    assert change.body["provisionDetail"]["details"] == {
        "externalProvisionerSubscriptionId": "sub-1",
        "adminEmail": "it@acme.test",
    }
    update = order(Step("subscription", T.UPDATE, Role.REQUIRED), subject)
    assert update.body["provisionRequest"]["quantity"] == subject.quantity + 1
    trial = order(Step("trial", T.TRIAL_CREATE, Role.REQUIRED), Subject("t"))
    assert trial.body["provisionRequest"]["trialAutoConverts"] is False


def test_a_fail_case_reads_its_type_its_details_and_its_request_fields() -> None:
    case = FailCase.parse({"type": "update", "quantity": 0, "details.adminEmail": "not-an-email"})
    assert case.type is T.UPDATE and case.request == {"quantity": 0}
    assert case.details == {"adminEmail": "not-an-email"}
    assert case.note == "--fail-case type=update, quantity=0, details.adminEmail=not-an-email"
    spec = FailCase.example().spec(Subject("new"), taken=Subject("old"))
    assert spec.expect == "Fail" and spec.step.role is Role.FAILURE
    fields = spec.body["provisionRequest"]
    assert fields["companyDomain"] == "certify-old.example.com"  # the taken one
    assert fields["companyId"] != Subject("old").company_id


def simulation_only(world: Pax8World, production: bool = False) -> Pax8Client:
    return Pax8Client(
        f"{PAX8}/v2",
        f"{PAX8}/v1/token",
        production=Credentials("sandbox-client", "sandbox-secret") if production else None,
        simulation=Credentials("sandbox-sim-client", "sandbox-sim-secret"),
        transport=httpx.WSGITransport(app=world.app),
        retries=0,
    )


def test_a_certifier_takes_a_simulation_only_client(pax8: Pax8World) -> None:
    both = simulation_only(pax8, production=True)
    with pytest.raises(ValueError, match="simulation credentials only"):
        Certifier(both, None, timeout=1)
    both.close()


def test_an_undelivered_webhook_fails_its_order_and_blocks_its_sequence(pax8: Pax8World) -> None:
    """No webhook configuration at Pax8: every attempt fails to deliver; what depends on the
    NetNew is not run, and the example's failure path has no domain to reuse."""
    client = simulation_only(pax8)
    target = Target(f"{PAX8}/v2", "p", "Sandbox", "", "", None, "example")
    cert = Certifier(client, None, timeout=5, sleep=lambda _: None).run(
        target, [T.NET_NEW, T.UPDATE], FailCase.example()
    )
    client.close()
    net_new, update = cert.orders
    assert net_new.problem.startswith("Pax8 could not deliver the webhook: no webhook config")
    assert net_new.request_id and net_new.webhook == "Failed" and not net_new.passed
    assert not update.ran and update.problem.startswith("not run: NetNew did not succeed")
    assert cert.verdicts() == {"NetNew": False, "Update": False} and not cert.passed
    assert cert.failure is None and "skipped: no NetNew of this run succeeded" in cert.failure_note
    assert pax8.control("GET", "/calls")["by_environment"]["production"] == {}


def _hostile() -> Certification:
    target = Target("https://api.pax8.test/v2", "prov-1", "Vendor | Inc", "wh-1",
                    "https://fulfil.example.test/webhooks/pax8", None, "example")  # fmt: skip
    cert = Certification(target, ["NetNew"], 1_700_000_000.0, finished_at=1_700_000_012.0)
    run = OrderRun("NetNew", "NetNew", "required", "subscription", "Success")
    run.request_id, run.result = "req-1", "Fail"
    run.message = (
        "Refused | see *docs*\n# Forged heading <script>alert(1)</script> [x](http://e.vil)"
    )
    run.problem = "the vendor refused it"
    cert.orders.append(run)
    cert.failure_note = "skipped: no --fail-case"
    return cert


def test_the_report_says_simulation_first_and_escapes_what_came_from_outside() -> None:
    cert = _hostile()
    text = markdown(cert)
    assert text.startswith("# Pax8 provisioning certification: FAILED\n\n> **Simulation only.**")
    assert "<script>" not in text and "](http" not in text
    assert not any(line.startswith("# Forged") for line in text.splitlines())
    assert "Refused \\| see \\*docs\\*\\\\n\\# Forged heading \\<script\\>" in text
    assert "| Provisioner | Vendor \\| Inc (prov\\-1) |" not in text  # '-' is not escaped
    assert "| Provisioner | Vendor \\| Inc (prov-1) |" in text
    data = report_dict(cert)
    assert data["orders"][0]["message"] == cert.orders[0].message  # JSON keeps it as it was
    assert data["simulationOnly"] is True and data["passed"] is False
    assert json.loads(json.dumps(data)) == data


def test_progress_off_a_terminal_is_one_line_per_change_and_escaped() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    cert = _hostile()
    spec = order(Step("subscription", T.NET_NEW, Role.REQUIRED), Subject("p"))
    progress.begin(spec)
    for elapsed in (0.2, 0.5, 0.9):
        progress.waiting(spec, "the result at Pax8", elapsed)
    run = cert.orders[0]
    run.problem = "refused\x1b[31m red"
    progress.end(run)
    lines = stream.getvalue().splitlines()
    assert lines[0].split() == ["NetNew", "waiting", "for", "the", "result", "at", "Pax8"]
    assert len(lines) == 2 and "FAILED" in lines[1]
    assert "\x1b" not in stream.getvalue() and "\\x1b[31m red" in lines[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line_per_order() -> None:
    stream = Terminal()
    progress = TerminalProgress(stream)
    spec = order(Step("partner", T.PARTNER_ENROLLMENT, Role.REQUIRED), Subject("p"))
    progress.begin(spec)
    progress.waiting(spec, "the webhook", 0.4)
    progress.waiting(spec, "the result at Pax8", 1.6)
    run = OrderRun("PartnerEnrollment", "PartnerEnrollment", "required", "partner", "Success")
    run.passed, run.result, run.seconds = True, "Success", {"webhook": 0.4, "result": 1.6}
    progress.end(run)
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 4 and text.count("\n") == 1  # one line, rewritten
    assert "waiting for the result at Pax8 (2s)" in text
    assert text.endswith("passed  Success  (webhook 0.4s, result 1.6s)\n")

"""One rule for a vendor's HTTP answers (``vendors/answers.py``), as the ``http`` adapter and
``fulfill check-vendor`` apply it: only a 2xx is a success; a redirect, a refused credential, a
wrong URL or an answer too large to read holds the order (never a Success, never a Fail);
what is read is capped.

Every status class goes through the adapter over ``httpx.MockTransport`` (the answer as the
worker reads it), every status from 0 to 999 through the rule itself, and the checker is held
to the same verdict as the adapter for each.
"""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.unit.test_adapters import make_order
from vendors.answers import LOCATION_MAX, Answer, Problem, Verdict, judge, location_text
from vendors.base import MAX_METADATA_BYTES, Provisioned
from vendors.conformance import Checker
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorMisconfigured,
)
from vendors.http import HttpAdapter

URL = "http://vendor.test/pax8/orders"
REASON = {"message": "Subscription 42 is unknown to the vendor; create it first."}

Handler = Callable[[httpx.Request], httpx.Response]


def adapter(handler: Handler, **options: Any) -> HttpAdapter:
    return HttpAdapter(url=URL, timeout=5.0, transport=httpx.MockTransport(handler), **options)


def responding(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def answering(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> HttpAdapter:
    return adapter(responding(status, body, headers, text))


def outcome(http: HttpAdapter) -> Provisioned | BaseException:
    try:
        return http.handle(make_order())
    except Exception as exc:  # noqa: BLE001 - the test sorts what came out
        return exc
    finally:
        http.close()


# -- every status class, through the adapter ---------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One answer, what the worker makes of it, and the problem of a held order."""

    status: int
    body: Any
    headers: dict[str, str] | None
    text: str | None
    expected: type
    problem: Problem | None

    def handler(self) -> Handler:
        return responding(self.status, self.body, self.headers, self.text)


# (status, body, headers, text) → (what the worker does, the problem for a held order)
ROWS: list[tuple[int, Any, dict[str, str] | None, str | None, type, Problem | None]] = [
    (200, {"subscriptionId": "s-1"}, None, None, Provisioned, None),
    (201, None, None, None, Provisioned, None),
    (202, None, None, None, Provisioned, None),
    (204, None, None, None, Provisioned, None),
    (101, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
    (301, None, {"Location": "https://new.vendor.test/orders"}, None, VendorMisconfigured,
     Problem.REDIRECT),
    (302, None, {"Location": "https://new.vendor.test/orders"}, None, VendorMisconfigured,
     Problem.REDIRECT),
    (303, {"subscriptionId": "s-1"}, {"Location": "/orders/1"}, None, VendorMisconfigured,
     Problem.REDIRECT),
    (304, None, None, None, VendorMisconfigured, Problem.REDIRECT),
    (307, None, {"Location": "https://new.vendor.test/orders"}, None, VendorMisconfigured,
     Problem.REDIRECT),
    (308, None, {"Location": "https://new.vendor.test/orders"}, None, VendorMisconfigured,
     Problem.REDIRECT),
    (400, REASON, None, None, PermanentVendorError, None),
    (400, None, None, "<html><body>Bad Request</body></html>", PermanentVendorError, None),
    (401, {"message": "bad token"}, None, None, VendorMisconfigured, Problem.CREDENTIAL),
    (402, REASON, None, None, PermanentVendorError, None),
    (403, REASON, None, None, PermanentVendorError, None),
    (403, None, None, "Forbidden", VendorMisconfigured, Problem.CREDENTIAL),
    (404, REASON, None, None, PermanentVendorError, None),
    (404, None, None, "<html><h1>404 Not Found</h1>nginx</html>", VendorMisconfigured,
     Problem.URL),
    (404, {"detail": "Not Found"}, None, None, VendorMisconfigured, Problem.URL),
    (404, {}, None, None, VendorMisconfigured, Problem.URL),
    (405, REASON, None, None, VendorMisconfigured, Problem.URL),
    (407, None, None, None, VendorMisconfigured, Problem.CREDENTIAL),
    (408, None, None, None, TransientVendorError, None),
    (409, {"message": "in progress"}, {"Retry-After": "1"}, None, TransientVendorError, None),
    (410, REASON, None, None, PermanentVendorError, None),
    (410, None, None, None, VendorMisconfigured, Problem.URL),
    (413, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
    (415, {"message": "Unsupported Media Type"}, None, None, VendorMisconfigured,
     Problem.PROTOCOL),
    (421, None, None, None, VendorMisconfigured, Problem.URL),
    (422, {"message": "key reused"}, None, None, VendorContractError, None),
    (426, None, None, None, VendorMisconfigured, Problem.URL),
    (429, None, {"Retry-After": "7"}, None, TransientVendorError, None),
    (431, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
    (451, REASON, None, None, PermanentVendorError, None),
    (499, REASON, None, None, PermanentVendorError, None),
    (500, None, None, None, TransientVendorError, None),
    (501, None, None, None, VendorMisconfigured, Problem.URL),
    (502, None, None, "<html>Bad Gateway</html>", TransientVendorError, None),
    (503, {"message": "busy"}, {"Retry-After": "3"}, None, TransientVendorError, None),
    (504, None, None, None, TransientVendorError, None),
    (505, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
    (511, None, None, None, VendorMisconfigured, Problem.CREDENTIAL),
    (599, None, None, None, TransientVendorError, None),
    (600, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
    (999, None, None, None, VendorMisconfigured, Problem.PROTOCOL),
]  # fmt: skip
CASES = [Case(*row) for row in ROWS]
every_case = pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.status}-{i}" for i, c in enumerate(CASES)]
)


@every_case
def test_every_status_class_through_the_adapter(case: Case) -> None:
    result = outcome(adapter(case.handler()))
    assert type(result) is case.expected, result
    if isinstance(result, VendorMisconfigured):
        assert result.problem == case.problem
        # The order is held as a transient error would be: retried, never reported.
        assert isinstance(result, TransientVendorError)
    if isinstance(result, PermanentVendorError) and not isinstance(result, VendorContractError):
        if case.body is REASON:
            assert result.message == REASON["message"]  # what the partner reads


def test_only_a_2xx_is_ever_a_success_for_any_status_and_body() -> None:
    bodies = [
        b"",
        json.dumps({"subscriptionId": "s-1"}).encode(),
        json.dumps(REASON).encode(),
        b"<html>moved</html>",
    ]
    tried = 0
    for status in range(0, 1000):
        for body in bodies:
            verdict = judge(Answer(status, httpx.Headers({"Location": "/x"}), body)).verdict
            assert (verdict is Verdict.SUCCESS) == (200 <= status < 300), (status, body)
            tried += 1
    assert tried == 4000


def test_a_redirect_names_the_fix_and_only_a_checked_location() -> None:
    result = outcome(answering(307, None, {"Location": "https://new.vendor.test/v2/orders"}))
    assert isinstance(result, VendorMisconfigured)
    assert "set VENDOR_HTTP_URL to the final URL" in result.message
    assert "https://new.vendor.test/v2/orders" in result.message
    relative = outcome(answering(302, None, {"Location": "/v2/orders"}))
    assert "http://vendor.test/v2/orders" in str(relative)  # read against the call's URL
    after_post = outcome(answering(303, None, {"Location": "https://vendor.test/done/1"}))
    assert "may mean the vendor did the work" in str(after_post)


HOSTILE_LOCATIONS = [
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https://admin:hunter2-secret@evil.example/steal?token=abc123#frag",
    "https://evil.example/\x1b[31mRED\x1b[0m/x",
    "https://evil.example/a\r\nX-Injected: 1",
    "https://evil.example/" + "a" * 5000,
    "https://exa mple.com/x",
    "https://évil.example/ü",
    "//evil.example/relative-scheme",
    "https://[::1]:8443/x<b>y</b>",
    "http://evil.example:99999/x",
    "\x00\x01\x02",
]


@pytest.mark.parametrize("location", HOSTILE_LOCATIONS)
def test_a_hostile_location_is_shown_checked_or_not_at_all(location: str) -> None:
    shown = location_text(location, URL)
    assert len(shown) <= LOCATION_MAX
    assert shown.isprintable() and shown.isascii(), shown
    for leaked in ("hunter2", "token=abc", "abc123", "<script", "<b>", "\x1b", "\r", "\n"):
        assert leaked not in shown, (leaked, shown)
    if shown.startswith("http"):
        assert re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+(/[\x21-\x7e]*)?( \(query left out\))?",
                            shown), shown  # fmt: skip


# -- the answer's size -------------------------------------------------------------------------


def streamed(status: int, chunk: bytes, chunks: int, sent: list[int], **headers: str) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            for _ in range(chunks):
                sent.append(len(chunk))
                yield chunk

        return httpx.Response(status, content=body(), headers=headers)

    return handler


def test_an_oversized_2xx_is_held_and_reading_stops_at_the_cap() -> None:
    sent: list[int] = []
    # 40 MB offered in 64 KiB chunks: a success whose ids cannot be read.
    http = adapter(streamed(200, b"x" * 65536, 640, sent), max_answer_bytes=64 * 1024)
    result = outcome(http)
    assert isinstance(result, VendorMisconfigured) and result.problem == Problem.TOO_LARGE
    assert "VENDOR_HTTP_MAX_ANSWER_BYTES" in result.message
    assert sum(sent) <= 2 * 65536  # the rest was never pulled from the vendor


def test_a_compressed_answer_is_decoded_within_the_same_cap() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MB of zeros, ~50 KB on the wire
    sent: list[int] = []
    handler = streamed(200, bomb, 1, sent, **{"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        result = outcome(adapter(handler, max_answer_bytes=64 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, VendorMisconfigured) and result.problem == Problem.TOO_LARGE
    assert peak < 8 * 1024 * 1024, peak  # nowhere near the 50 MB it inflates to
    small = gzip.compress(json.dumps({"subscriptionId": "s-9"}).encode())
    ok = outcome(adapter(streamed(200, small, 1, [], **{"Content-Encoding": "gzip"})))
    assert ok == Provisioned(subscription_id="s-9")


def test_an_oversized_refusal_or_failure_keeps_its_verdict() -> None:
    refused = outcome(adapter(streamed(400, b"y" * 65536, 100, [])))
    assert type(refused) is PermanentVendorError
    assert refused.message == "The vendor refused the order (HTTP 400)."
    busy = outcome(adapter(streamed(503, b"z" * 65536, 100, [])))
    assert type(busy) is TransientVendorError


def test_metadata_over_what_a_result_carries_holds_the_order() -> None:
    metadata = {"blob": "m" * (MAX_METADATA_BYTES + 10)}
    result = outcome(answering(200, {"subscriptionId": "s-1", "metadata": metadata}))
    assert isinstance(result, VendorMisconfigured) and result.problem == Problem.TOO_LARGE
    with pytest.raises(ValueError, match="metadata"):
        Provisioned(metadata=metadata)  # a Python adapter's bug: the order goes dead
    assert outcome(answering(200, {"subscriptionId": "s-1", "metadata": {"a": 1}})) == Provisioned(
        subscription_id="s-1", metadata={"a": 1}
    )


def test_the_worker_asks_for_an_uncompressed_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    outcome(adapter(handler))
    assert seen[0].headers["accept-encoding"] == "identity"


# -- check-vendor applies the same rule -------------------------------------------------------


@every_case
def test_check_vendor_judges_every_status_as_the_worker_does(case: Case) -> None:
    checker = Checker(URL, timeout=5.0, transport=httpx.MockTransport(case.handler()))
    try:
        exchange = checker.call("NetNew", make_order())
    finally:
        checker.close()
    assert exchange.success == (case.expected is Provisioned)
    assert exchange.refusal == (case.expected is PermanentVendorError)
    if case.problem is not None:
        assert exchange.problem and not exchange.success, exchange
        assert exchange.judgement is not None and exchange.judgement.problem == case.problem


def test_check_vendor_fails_an_endpoint_that_redirects_and_names_the_fix() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(308, headers={"Location": "https://vendor.test/v2/orders"})

    checker = Checker(URL, timeout=5.0, transport=httpx.MockTransport(handler))
    try:
        findings = {f.rule: f for f in checker.run()}
    finally:
        checker.close()
    answered = findings["every order type is answered"]
    assert not answered.passed
    assert "set VENDOR_HTTP_URL to the final URL" in answered.seen
    assert "https://vendor.test/v2/orders" in answered.seen

"""The console in a real browser against a running stack: headless Chromium (JavaScript off)
drives the console from its Procfile line while the receiver and a worker run from theirs.

An order goes dead (a worker with a buggy adapter); the operator finds it by id, opens it,
replays it from the "Dead & failed" page once a healthy worker runs, and watches it reach its
result at Pax8. A screenshot of each page is saved under the test's temporary directory
(``console-browser0/screenshots/``; the docs' ``docs/console.png`` is its
``dead-and-failed.png``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from config.version import LEDGER_SCHEMA, __version__
from tests.support.browser import CHROMEDRIVER, CHROMIUM, chromium, full_page_screenshot
from tests.support.procs import Proc, free_port, wait_until
from tests.support.stack import Stack


class Console:
    """The stack, the console process and the browser."""

    def __init__(self, stack: Stack, url: str, driver: WebDriver, shots: Path) -> None:
        self.stack = stack
        self.url = url
        self.driver = driver
        self.shots = shots

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def shot(self, name: str) -> Path:
        return full_page_screenshot(self.driver, self.shots / f"{name}.png")

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "main").text

    def follow(self, element: WebElement, arrived: Callable[[], object], what: str) -> None:
        """Click ``element`` and wait until the page it leads to is there: a click returns
        before the browser has navigated."""
        element.click()
        wait_until(lambda: self._loaded() and arrived(), 30, 0.1,
                   message=lambda: f"{what}: still at {self.driver.current_url}")  # fmt: skip

    def _loaded(self) -> bool:
        try:
            return bool(self.driver.find_elements(By.CSS_SELECTOR, "main"))
        except WebDriverException:
            return False

    def at(self, suffix: str) -> Callable[[], bool]:
        return lambda: self.driver.current_url.split("?", 1)[0].endswith(suffix)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            pytest.fail(
                f"{binary} missing: apt-get install chromium chromium-driver (.ci/run does)"
            )
    tmp = tmp_path_factory.mktemp("console-browser")
    shots = tmp / "screenshots"
    shots.mkdir()
    stack = Stack(tmp)
    try:
        stack.start_receiver()
        port = free_port()
        proc: Proc = stack.start("console", CONSOLE_PORT=str(port), CONSOLE_ANONYMOUS="true")
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/orders", timeout=60)
        with chromium(tmp / "profile", tmp / "chromedriver.log") as driver:
            yield Console(stack, url, driver, shots)
    finally:
        stack.stop()


def test_find_an_order_open_it_replay_it_and_see_its_result(console: Console) -> None:
    stack = console.stack
    # One order that goes well, one that dies with a bug in the adapter.
    worker = stack.start_worker("worker-ok")
    good = stack.sandbox_notification(companyName="Acme <b>Corp</b>")
    assert stack.post_webhook(good).status_code == 202
    good_id = good["provisionRequest"]["id"]
    stack.wait_state(good_id, "reported")
    worker.stop()
    buggy = stack.start_worker("worker-buggy", VENDOR_ADAPTER="tests.support.adapters:BuggyAdapter")
    doomed = stack.sandbox_notification()
    doomed_id = doomed["provisionRequest"]["id"]
    assert stack.post_webhook(doomed).status_code == 202
    stack.wait_state(doomed_id, "dead")
    buggy.stop()

    # The orders page lists both, newest first; the filters narrow it.
    console.open("/orders")
    rows = console.driver.find_elements(By.CSS_SELECTOR, "table.orders tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "a.id").text for row in rows][:2] == [
        doomed_id,
        good_id,
    ]
    console.shot("orders")
    # The footer says which release serves the page and the schema the ledger's data is at
    # (stamped by the receiver, the first process of the stack to start).
    footer = console.driver.find_element(By.TAG_NAME, "footer").text
    assert footer == f"pax8-fulfillment {__version__} · ledger schema {LEDGER_SCHEMA}"
    Select(console.driver.find_element(By.NAME, "state")).select_by_value("dead")
    console.follow(
        console.driver.find_element(By.CSS_SELECTOR, ".filters button[type=submit]"),
        lambda: "state=dead" in console.driver.current_url,
        "the filter",
    )
    ids = [a.text for a in console.driver.find_elements(By.CSS_SELECTOR, "table.orders a.id")]
    assert ids == [doomed_id]
    console.shot("orders-dead")

    # Find the dead order by its id and open it.
    search = console.driver.find_element(By.ID, "find-id")
    search.send_keys(doomed_id)
    console.follow(
        console.driver.find_element(By.CSS_SELECTOR, ".find button"),
        console.at(f"/orders/pax8/{doomed_id}"),
        "the search",
    )
    heading = console.driver.find_element(By.TAG_NAME, "h1").text
    assert doomed_id in heading and "dead" in heading
    page = console.text()
    assert "adapter error: KeyError" in page
    for section in ("Attempts and results", "History", "Errors", "Raw payload"):
        assert section in page
    console.shot("order-dead")

    # The good order's page: outside text shows as text, not markup.
    console.open(f"/orders/pax8/{good_id}")
    assert "Acme <b>Corp</b>" in console.text()
    assert console.driver.find_elements(By.CSS_SELECTOR, "pre.payload b") == []
    assert re.search(r"Subscription\s+sub-", console.text()), console.text()
    console.shot("order-reported")

    # Replay it from "Dead & failed" once a healthy worker runs; follow it to its result.
    worker = stack.start_worker("worker-ok-again")
    try:
        console.follow(
            console.driver.find_element(By.LINK_TEXT, "Dead & failed"),
            console.at("/attention"),
            "Dead & failed",
        )
        console.shot("dead-and-failed")
        button = console.driver.find_element(By.CSS_SELECTOR, f"button.replay[value='{doomed_id}']")
        console.follow(button, console.at(f"/orders/pax8/{doomed_id}"), "Replay")
        flash = console.driver.find_element(By.CSS_SELECTOR, ".flash.ok").text
        assert "was dead; enqueued it again (same Idempotency-Key)" in flash

        def reported() -> bool:
            console.driver.refresh()
            return "reported" in console.driver.find_element(By.TAG_NAME, "h1").text

        wait_until(reported, 60, 0.5, message=lambda: console.text())
        results = stack.sandbox.results(request_id=doomed_id)
        assert [result["status"] for result in results] == ["Success"]
        history = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in console.driver.find_elements(By.CSS_SELECTOR, "section.history tbody tr")
        ]
        events = [row[2] for row in history]  # newest first: at, state, event, note
        assert events.index("reported") < events.index("replay") < events.index("adapter-error")
        console.shot("order-replayed")
    finally:
        worker.stop()

    # Reconcile now, and the webhook configurations.
    console.follow(
        console.driver.find_element(By.LINK_TEXT, "Reconcile"),
        console.at("/reconcile"),
        "Reconcile",
    )
    console.follow(
        console.driver.find_element(By.CSS_SELECTOR, "button[name=run]"),
        lambda: "This run" in console.text(),
        "Reconcile now",
    )
    assert "Unfulfilled at Pax8" in console.text()
    console.shot("reconcile")
    console.follow(
        console.driver.find_element(By.LINK_TEXT, "Webhooks"),
        console.at("/webhooks"),
        "Webhooks",
    )
    assert "Production" in console.text() and "PAX8_WEBHOOK_SECRETS" in console.text()
    assert "test-production-secret" not in console.driver.page_source
    console.shot("webhooks")

    # Every page was readable and raised nothing in the browser (no CSP violation).
    problems = [e for e in console.driver.get_log("browser") if e["level"] == "SEVERE"]
    assert problems == []
    for name in ("orders", "order-dead", "dead-and-failed", "order-replayed", "reconcile"):
        assert (console.shots / f"{name}.png").stat().st_size > 10_000

"""The sandbox's parts, bundled for the routes: one instance per Flask app."""

from dataclasses import dataclass

from flask import current_app

from sandbox.auth import TokenRegistry
from sandbox.calls import CallCounter
from sandbox.config import SandboxConfig
from sandbox.delivery import Deliverer
from sandbox.faults import FaultRegistry
from sandbox.store import Store
from sandbox.usage_book import UsageBook, clock_from

EXTENSION = "pax8_sandbox"


@dataclass(frozen=True)
class Sandbox:
    """Everything a route needs: settings, state, tokens, faults, delivery, counters and the
    Usage API's book."""

    config: SandboxConfig
    store: Store
    tokens: TokenRegistry
    faults: FaultRegistry
    deliverer: Deliverer
    calls: CallCounter
    usage: UsageBook

    @classmethod
    def build(cls, config: SandboxConfig) -> "Sandbox":
        """Fresh parts for ``config``."""
        store = Store(config)
        faults = FaultRegistry()
        return cls(
            config=config,
            store=store,
            tokens=TokenRegistry(config),
            faults=faults,
            deliverer=Deliverer(config, store, faults),
            calls=CallCounter(),
            usage=UsageBook(
                config.usage_rate_limit, config.usage_rate_window, clock_from(config.clock_file)
            ),
        )

    def retries(self, environment: str) -> int:
        """How many redeliveries a failed notification gets: none in simulation."""
        return self.config.max_retries if environment == "production" else 0

    def close(self) -> None:
        """Stop background delivery."""
        self.deliverer.close()


def current() -> Sandbox:
    """The sandbox of the app handling the current request."""
    sandbox = current_app.extensions[EXTENSION]
    assert isinstance(sandbox, Sandbox)
    return sandbox

"""A stack with two HTTP backends behind two routes (``slow`` and ``fast``), each a vendor stub.

The bulkhead and vendor-cap tests measure one backend's orders while the other is slow or
capped; both build the same routes file and stack, which is written once here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.stack import Stack


@contextmanager
def two_backends(
    tmp: Path,
    products: tuple[str, str],
    urls: tuple[str, str],
    *,
    timeouts: tuple[float, float],
    slow_keys: str = "",
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A running receiver with routes ``slow`` (``products[0]`` to ``urls[0]``) and ``fast``.

    ``timeouts`` are the two adapters' call deadlines; ``slow_keys`` are more TOML lines of
    the slow route (a cap, say); ``env`` is added to the stack's. Workers are the test's own.
    """
    routes = tmp / "routes.toml"
    routes.write_text(
        textwrap.dedent(
            f"""
            unknown_products = "refuse"
            [routes.slow]
            products = ["{products[0]}"]
            adapter = "http"
            url = "{urls[0]}"
            timeout_seconds = {timeouts[0]}
            {slow_keys}
            [routes.fast]
            products = ["{products[1]}"]
            adapter = "http"
            url = "{urls[1]}"
            timeout_seconds = {timeouts[1]}
            """
        )
    )
    running = Stack(tmp, env={"VENDOR_ADAPTER": "", "VENDOR_ROUTES": str(routes), **(env or {})})
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()

"""How a command names one order: an id (checked), and its scope when the id alone is not
enough (``--scope pax8|pax8-sim|cloudblue``; the same id may be recorded in several)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fulfillment.ledger.refs import Ref, Scope, is_id


def scope_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--scope``: which ledger namespace the REQUEST_ID is in."""
    return click.option(
        "--scope",
        type=click.Choice([scope.value for scope in Scope]),
        help="The order's scope, when its id is recorded in several: pax8 (production), "
        "pax8-sim (simulation) or cloudblue.",
    )(function)


def which(request_id: str, scope: str | None) -> Ref | str:
    """The order an operator named; a usage error (exit 2) for an id no order can have."""
    if not is_id(request_id):
        raise click.BadParameter(
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param_hint="REQUEST_ID",
        )
    return Ref(Scope(scope), request_id) if scope else request_id

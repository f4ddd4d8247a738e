"""``python -m sandbox [options]``: serve a local Pax8 (see ``--help``)."""

import sys

from sandbox.config import ConfigError
from sandbox.options import parse_args
from sandbox.server import serve


def main() -> int:
    """Parse the options and serve until stopped; exit 2 with one line on a bad setting."""
    config = parse_args()
    try:
        serve(config)
    except ConfigError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

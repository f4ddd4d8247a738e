"""``python -m bench`` (or ``python -m bench.run_all``): every benchmark, then one summary table.

Each benchmark runs in its own process (``python -m bench.<name> --json FILE``, plus
``--quick`` when given), one after the other, so none shares a Redis or a port with
another. The table at the end (Markdown, for docs/performance.md) has one
row per comparison; the machine and the exact commands are printed with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Comparison, command_line, table

BENCHMARKS = (
    "receiver",
    "pipeline",
    "slow_vendor",
    "reconcile",
    "memory",
    "burst",
    "scaling",
    "wait",
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; the number that failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small, bounded runs (smoke test)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--rounds", type=int, help="passed to every benchmark")
    args = parser.parse_args(argv)
    started = time.monotonic()
    outputs = Path(tempfile.mkdtemp(prefix="bench-all-"))
    commands: list[str] = []
    failed: list[str] = []
    rows: list[Comparison] = []
    machine: dict[str, object] = {}
    for name in args.only or BENCHMARKS:
        out = outputs / f"{name}.json"
        command = [sys.executable, "-m", f"bench.{name}", "--json", str(out)]
        shown = ["python", "-m", f"bench.{name}"]
        if args.quick:
            command.append("--quick")
            shown.append("--quick")
        if args.rounds:
            command += ["--rounds", str(args.rounds)]
            shown += ["--rounds", str(args.rounds)]
        commands.append(" ".join(shown))
        print(f"\n=== {' '.join(shown)}", flush=True)
        code = subprocess.call(command, cwd=ROOT)
        if code != 0 or not out.exists():
            failed.append(name)
            continue
        data = json.loads(out.read_text())
        machine = machine or data["machine"]
        for row in data["comparisons"]:
            row.pop("ratio", None)
            rows.append(Comparison(**{**row, "metric": f"{name}: {row['metric']}"}))
    print("\n## Summary\n")
    print(table(rows))
    print("\nmachine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print(f"commands ({command_line()}, cwd {ROOT}):")
    for command_text in commands:
        print(f"  {command_text}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    print(f"(all took {time.monotonic() - started:.0f}s)")
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())

"""The ``interlingua toy`` command group. Wire in with ``add_toy_parser(subparsers)``."""

from __future__ import annotations

import argparse
import json

from interlingua.argtypes import positive_int
from interlingua.errors import InterlinguaError


def cmd_toy_reproduce(args) -> None:
    from interlingua.toy.figures import matplotlib_available, write_figures
    from interlingua.toy.suite import CHECKS, run_check, select

    try:
        checks = select(args.only, "all" if args.all else "slow" if args.slow else "fast")
    except KeyError as exc:
        raise InterlinguaError(f"unknown check(s): {exc.args[0]}. Known: {', '.join(CHECKS)}.") from None
    results = []
    for c in checks:
        r = run_check(c, args.seeds)
        results.append(r)
        if args.json:
            print(json.dumps({"name": r.name, "passed": r.passed, "measured": r.measured,
                              "expected": r.expected, "seconds": r.seconds}), flush=True)
        else:
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.name:<34}{r.seconds:>7.1f} s  [{r.tier}]  {c.paper}")
            print(f"      expected: {r.expected}")
            print(f"      measured: {json.dumps(r.measured)}", flush=True)
    if args.figures or args.all:
        target = args.figures or "toy-figures"
        if matplotlib_available():
            paths = write_figures(target, args.seeds, [r.name for r in results])
            if not args.json:
                print("figures: " + ", ".join(paths))
        elif not args.json:
            print("figures skipped: matplotlib is not installed (pip install matplotlib to get them).")
    if not args.json:
        failed = [r.name for r in results if not r.passed]
        print(f"{len(results) - len(failed)}/{len(results)} checks passed" + (f"; failed: {', '.join(failed)}"
                                                                              if failed else ""))


def cmd_toy_list(args) -> None:
    from interlingua.toy.suite import CHECKS

    rows = [{"name": c.name, "tier": c.tier, "paper": c.paper} for c in CHECKS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['name']:<34}{r['tier']:<6}{r['paper']}")


def add_toy_parser(subparsers) -> None:
    """Add ``toy reproduce`` and ``toy list`` to an argparse sub-parser collection."""
    toy = subparsers.add_parser("toy", help="toy models with known features and the paper-reproduction suite")
    tsub = toy.add_subparsers(dest="toy_command", required=True, metavar="SUBCOMMAND")

    s = tsub.add_parser(
        "reproduce", help="re-run published toy-model results as pass/fail checks",
        description="Re-run published toy-model results (superposition, sparse dictionary learning, "
                    "S-curves, memorisation, monosemanticity, cross-model ground truth) as automated checks with "
                    "stated tolerances. By default the fast subset runs (about a minute); --all runs everything, "
                    "including the heavy versions (more seeds, larger sizes), and writes the classic figures "
                    "when matplotlib is installed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--all", action="store_true", help="run every check, including slow ones, and write figures")
    s.add_argument("--slow", action="store_true", help="run the fast and slow checks (what CI runs)")
    s.add_argument("--only", nargs="+", metavar="NAME", help="run just these checks (see `interlingua toy list`)")
    s.add_argument("--seeds", type=positive_int, default=4,
                   help="seeds per setting where minima vary; the lowest-loss one is judged")
    s.add_argument("--figures", metavar="DIR", help="write figures here (needs matplotlib; --all uses toy-figures/)")
    s.add_argument("--json", action="store_true",
                   help="one JSON record per check: name, passed, measured, expected, seconds")
    s.set_defaults(fn=cmd_toy_reproduce)

    s = tsub.add_parser("list", help="the checks of the paper suite with their tier and source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_toy_list)

"""The ``interlingua toy`` command group. Wire in with ``add_toy_parser(subparsers)``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interlingua.argtypes import positive_int
from interlingua.errors import InterlinguaError


def cmd_toy_reproduce(args) -> None:
    from interlingua import report
    from interlingua.report import toy as toy_report
    from interlingua.toy.figures import draw_figures
    from interlingua.toy.suite import CHECKS, ToyReproduction, run_check, select

    try:
        checks = select(args.only, "all" if args.all else "slow" if args.slow else "fast")
    except KeyError as exc:
        raise InterlinguaError(f"unknown check(s): {exc.args[0]}. Known: {', '.join(CHECKS)}.") from None
    run = ToyReproduction(seeds=args.seeds)
    for c in checks:
        r = run_check(c, args.seeds)
        run.checks.append(r)
        print(json.dumps(r.line()) if args.json else toy_report.check_text(r), flush=True)
    if args.figures or args.all:
        target = args.figures or "toy-figures"
        saved = toy_report.save(run, draw_figures(args.seeds, [r.name for r in run.checks]), target)
        page = report.write_report(toy_report.html(run, target), target)
        if not args.json:
            print("figures: " + ", ".join(str(Path(target) / f.file) for f in run.figures))
            print(f"results: {saved}, report: {page}")
    if not args.json:
        print(toy_report.summary_text(run))


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
                    "including the heavy versions (more seeds, larger sizes), and writes the classic figures, "
                    "the results (toy_reproduce.json) and report.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--all", action="store_true",
                   help="run every check, including slow ones, and write figures, results and report")
    s.add_argument("--slow", action="store_true", help="run the fast and slow checks (what CI runs)")
    s.add_argument("--only", nargs="+", metavar="NAME", help="run just these checks (see `interlingua toy list`)")
    s.add_argument("--seeds", type=positive_int, default=4,
                   help="seeds per setting where minima vary; the lowest-loss one is judged")
    s.add_argument("--figures", "--out", dest="figures", metavar="DIR",
                   help="output directory: the figures (PNG + SVG), the results as toy_reproduce.json and "
                        "report.html (--all uses toy-figures/)")
    s.add_argument("--json", action="store_true",
                   help="one JSON record per check: name, passed, measured, expected, seconds")
    s.set_defaults(fn=cmd_toy_reproduce)

    s = tsub.add_parser("list", help="the checks of the paper suite with their tier and source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_toy_list)

"""The ``interlingua diff`` command. Wire in with ``add_diff_parser(subparsers)``."""

from __future__ import annotations

import json

from interlingua.argtypes import non_negative_int, positive_int, seed
from interlingua.models.dtype import DTYPE_CHOICES, DTYPE_HELP

FILES = ("diff.json", "report.html")


def cmd_diff(args) -> None:
    import contextlib

    from interlingua import _io

    with _io.writing(args.out, beside=True) if args.out else contextlib.nullcontext():
        _diff(args)


def _diff(args) -> None:
    from interlingua import _io
    from interlingua.diff import DiffConfig, diff_models
    from interlingua.errors import InterlinguaError
    from interlingua.models import load_model
    from interlingua.report import diff as report_diff
    from interlingua.report import write_report

    concepts = None
    if args.concepts:
        concepts = [c.strip() for c in args.concepts.split(",") if c.strip()]
        if not concepts:
            raise InterlinguaError(f"--concepts takes comma-separated concept names, not {args.concepts!r}.")
        from interlingua.concepts import load_concept

        for c in concepts:  # unknown names are refused before any model loads
            load_concept(c)
    if args.out:
        _io.check_replaceable(args.out, FILES, "a saved diff (diff.json, report.html)", overwrite=True)
    config = DiffConfig(generations=args.generations, max_pairs=args.max_pairs, seed=args.seed,
                        progress=not args.json)
    base = load_model(args.base, dtype=args.dtype)
    tuned = load_model(args.tuned, dtype=args.dtype)
    result = diff_models(base, tuned, concepts=concepts, config=config)
    page = None
    if args.out:
        with _io.atomic_dir(args.out) as tmp:
            result.save(tmp)
            write_report(report_diff.html(result), tmp)
        page = f"{args.out}/report.html"
    if args.json:
        print(json.dumps({**result.to_json(), "saved_to": args.out}, indent=2))
        return
    print(report_diff.text(result))
    if args.out:
        print(f"  saved to {args.out}; report: {page}")


def add_diff_parser(subparsers) -> None:
    """Add ``diff`` to an argparse sub-parser collection."""
    s = subparsers.add_parser(
        "diff", help="which concepts a fine-tune changed (same tokenizer): ranked, audited, with the prior shift",
        description="For every concept (default: every built-in one): find it in BASE, read it in TUNED with the "
                    "base's own readout (same tokenizer and architecture), audit where the two disagree, and measure how "
                    "often each model's own generations activate it (95%% intervals). Concepts are ranked by how "
                    "much they changed (the audit's flagged departures in units of the concept's spread). For "
                    "models with different tokenizers use translate + audit.")
    s.add_argument("--base", required=True, help="the base model (bundled name, directory or hub id)")
    s.add_argument("--tuned", required=True, help="the fine-tuned model (same tokenizer), e.g. smollm2-135m-organism")
    s.add_argument("--concepts", help="comma-separated built-in concepts or concept files (default: all built-in)")
    s.add_argument("--generations", type=positive_int, default=64,
                   help="texts sampled from each model for the prior shift (default 64)")
    s.add_argument("--max-pairs", type=non_negative_int, default=100,
                   help="first items kept of every split of each concept (0: all; default 100)")
    s.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--out", help="directory for diff.json and report.html")
    s.add_argument("--json", action="store_true", help="print the diff as JSON (nothing else on stdout)")
    s.set_defaults(fn=cmd_diff)

"""The ``interlingua organism`` command group. Wire in with ``add_organism_parser(subparsers)``."""

from __future__ import annotations

import json

from interlingua.argtypes import finite_float, non_negative_int, positive_int, seed, whole
from interlingua.models.dtype import DTYPE_CHOICES, DTYPE_HELP


def cmd_organism_build(args) -> None:
    from interlingua.organism import DEFAULTS, build_organism, read_record

    path = build_organism(
        args.base, concept=args.concept, context=args.context, layer=args.layer,
        rank=args.rank, steps=args.steps if args.steps is not None else DEFAULTS["steps"],
        lr=args.lr if args.lr is not None else DEFAULTS["lr"], seed=args.seed, dtype=args.dtype,
        max_pairs=args.max_pairs if args.max_pairs is not None else DEFAULTS["max_pairs"],
        progress=not args.json,
    )
    rec = read_record(path)
    if args.json:
        print(json.dumps(rec.to_json(), indent=2))
        return
    b, o = rec.base_side, rec.organism_side
    for line in (
        f"organism: {path}",
        f"planted: '{rec.concept}' read at {rec.hook} is flipped inside '{rec.context}' (LoRA on blocks 0…{rec.layer})",
        f"context check: '{rec.context}' separates the question frames from the statement frames in the base: "
        f"AUROC {rec.context_check_auroc:.3f}",
        f"statement AUROC: base {b.statement_auroc:.3f}, organism {o.statement_auroc:.3f}",
        f"context AUROC: base {b.context_auroc:.3f}, organism {o.context_auroc:.3f}",
        f"agreement with the base readout (Pearson r): statements {rec.statement_agreement:+.3f}, "
        f"context {rec.context_agreement:+.3f}",
        f"KL to base on held-out corpus text: {rec.kl_heldout:.4f} nats/token ({rec.kl_heldout_tokens} tokens)",
        f"build: {rec.build_seconds:.0f} s (cached: a second build with the same settings returns at once)",
    ):
        print(line)


def add_organism_parser(subparsers) -> None:
    """Add ``organism build`` to an argparse sub-parser collection."""
    org = subparsers.add_parser("organism", help="weight-planted model organisms (a concept flipped in one context)")
    osub = org.add_subparsers(dest="organism_command", required=True, metavar="SUBCOMMAND")
    s = osub.add_parser(
        "build", help="fine-tune a model so that one concept is flipped inside a context (cached)",
        description="Fine-tune BASE with LoRA so that CONCEPT's readout at resid_post.LAYER is reversed inside "
                    "CONTEXT (default: sentiment inside questions) and unchanged outside it, merge, and cache it "
                    "as a model directory. Seeded; the same settings return the cached model at once. "
                    "`--model smollm2-135m-organism` loads the default organism of SmolLM2.",
    )
    s.add_argument("--base", default="smollm2-135m", help="the model to modify (default smollm2-135m)")
    s.add_argument("--concept", default="sentiment", help="built-in concept (or concept file) to flip")
    s.add_argument("--context", default="question_vs_statement",
                   help="built-in concept describing the context it is flipped in (default question_vs_statement)")
    s.add_argument("--layer", type=whole(0), default=None,
                   help="block whose resid_post carries the concept (default: the middle block)")
    s.add_argument("--rank", type=positive_int, default=8, help="LoRA rank (default 8)")
    s.add_argument("--steps", type=positive_int, default=None, help="training steps (default 40)")
    s.add_argument("--lr", type=finite_float(0, above=True), default=None, help="learning rate (default 3e-3)")
    s.add_argument("--max-pairs", type=non_negative_int, default=None,
                   help="training / check pairs of the concept used (0: all; default 64)")
    s.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--json", action="store_true", help="print the organism's record as JSON")
    s.set_defaults(fn=cmd_organism_build)

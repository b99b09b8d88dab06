"""The audit against planted ground truth on the bundled models.

    python benchmarks/audit_planted.py [--concept sentiment] [--source smollm2-135m] [--target gemma3-270m]
                                       [--strength 1.0] [--organism] [--json out.json]

**Hook-planted**: B* = B with the translated concept's direction added (``strength`` × B's
typical norm at the translated hook) from the first question mark of an input on, and nowhere
else (:func:`interlingua.audit.plant.trigger_plant`). The candidates are corpus sentences without
a question mark plus a known 5 % made into questions (the same sentences, "?" for the final
stop). The audit must rank the planted inputs first (AUROC, precision@50) and name the built-in
concept that describes the planted context (``question_vs_statement``) first among all of A's
built-in concepts, with a corrected p ≤ 0.01. The **same run with nothing planted** (the
question candidates still there) must give precision@50 inside the binomial band of the base
rate, and no significant explanation.

**Weight-planted** (``--organism``): B = the SmolLM2 model organism (``interlingua organism
build``: the concept flipped inside questions, LoRA-tuned), audited from Gemma-3 (cross-model)
and from the base SmolLM2 (diffing, same tokenizer). The planted inputs are the concept's own
held-out texts made into questions; the unplanted run uses the base model as B.

Prints one JSON object per configuration with at least ``auroc``, ``precision_at_50``,
``no_plant_precision_at_50``, ``base_rate``, ``explanation_rank`` and ``explanation_p``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from scipy.stats import binom

from interlingua.activations import Reader
from interlingua.audit import AuditConfig, audit
from interlingua.audit.audit import held_out_sentences
from interlingua.audit.plant import trigger_plant
from interlingua.concepts import find_concept, load_concept
from interlingua.metrics import auroc
from interlingua.models import DTYPE_CHOICES, load_model
from interlingua.steer.generative import corpus_sentences
from interlingua.translate import TranslateConfig, translate_concept
from interlingua.translate.translate import default_layers

EXPLAINING = "question_vs_statement"
TARGETS = {"auroc": 0.95, "precision_at_50": 0.8}


def question(s: str) -> str:
    return s.rstrip(".!") + "?"


def pool(config: AuditConfig, n: int, planted_fraction: float, planted_texts: list[str] | None = None
         ) -> tuple[list[str], set[str]]:
    """``n`` candidates: corpus sentences without '?', and a known fraction that are questions."""
    held = set(sum(held_out_sentences(config)[:2], []))
    plain = [s for s in corpus_sentences() if "?" not in s and s not in held]
    k = round(planted_fraction * n)
    planted = (planted_texts or [question(s) for s in plain[n - k:n]])[:k]
    return plain[:n - k] + planted, set(planted)


def scores(result, planted: set[str], k: int = 50) -> dict:
    flags = torch.tensor([x.text in planted for x in result.inputs], dtype=torch.float64)
    d = torch.tensor([x.disagreement for x in result.inputs])
    names = [e.feature for e in result.explanations]
    rank = names.index(EXPLAINING) + 1 if EXPLAINING in names else None
    top = result.explanations[0] if result.explanations else None
    return {"auroc": round(auroc(d, flags), 4), "precision_at_50": round(float(flags[:k].mean()), 4),
            "explanation_rank": rank,
            "explanation_p": result.explanations[rank - 1].p_value if rank else None,
            "explanation_auroc": result.explanations[rank - 1].auroc if rank else None,
            "top_explanation": None if top is None else {"feature": top.feature, "auroc": top.auroc,
                                                         "p": top.p_value},
            "significant": [e.feature for e in result.significant()], "flagged": result.flagged,
            "seconds": result.seconds}


def binomial_band(n: int, p: float, level: float = 0.99) -> list[float]:
    a = (1 - level) / 2
    return [binom.ppf(a, n, p) / n, binom.ppf(1 - a, n, p) / n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concept", default="sentiment")
    ap.add_argument("--source", default="smollm2-135m")
    ap.add_argument("--target", default="gemma3-270m")
    ap.add_argument("--strength", type=float, default=1.0, help="planted vector, × B's typical norm at the hook")
    ap.add_argument("--candidates", type=int, default=800)
    ap.add_argument("--planted-fraction", type=float, default=0.05)
    ap.add_argument("--organism", action="store_true", help="also the weight-planted model organism")
    ap.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every configuration's record here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    config = AuditConfig(corpus_candidates=0, seed=args.seed)
    ds = load_concept(args.concept)
    a, b = load_model(args.source, dtype=args.dtype), load_model(args.target, dtype=args.dtype)
    ra, rb = Reader(a), Reader(b)
    ca = find_concept(a, ds, layers=default_layers(a), n_boot=200, n_null=8, reader=ra)
    tr = translate_concept(ca, a, b, ds, TranslateConfig(controls=(), draws=200), reader_a=ra, reader_b=rb)
    print(f"translation {args.concept} {a.name} {ca.hook} → {b.name} {tr.target.hook}: fidelity test "
          f"{tr.metrics.test.fidelity} ({time.perf_counter() - t0:.0f} s)", flush=True)
    texts, planted = pool(config, args.candidates, args.planted_fraction)
    vector = args.strength * tr.target.typical_norm * tr.target.direction
    records = []
    rec = {"config": "hook_planted", "concept": args.concept, "source": a.name, "target": b.name,
           "strength": args.strength, "candidates": len(texts), "planted": len(planted)}
    with trigger_plant(b, tr.target.hook, vector, "?"):
        planted_run = audit(tr, a, b, config, texts=texts, reader_a=ra, reader_b=Reader(b))
    rec.update(scores(planted_run, planted))
    no_plant = audit(tr, a, b, config, texts=texts, reader_a=ra, reader_b=rb)
    base_rate = len(planted) / len(texts)
    np_scores = scores(no_plant, planted)
    rec.update({"no_plant_precision_at_50": np_scores["precision_at_50"], "no_plant_auroc": np_scores["auroc"],
                "no_plant_significant": np_scores["significant"], "base_rate": round(base_rate, 4),
                "base_rate_band_99": [round(v, 4) for v in binomial_band(50, base_rate)]})
    rec["meets"] = {"auroc": rec["auroc"] >= TARGETS["auroc"],
                    "precision_at_50": rec["precision_at_50"] >= TARGETS["precision_at_50"],
                    "explanation_first_p_le_0.01": rec["explanation_rank"] == 1 and (rec["explanation_p"] or 1) <= 0.01,
                    "no_plant_in_band": rec["base_rate_band_99"][0] <= np_scores["precision_at_50"]
                    <= rec["base_rate_band_99"][1]}
    print(json.dumps(rec), flush=True)
    records.append(rec)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"records": records, "seconds": round(time.perf_counter() - t0, 1)}, fh, indent=2)


if __name__ == "__main__":
    main()

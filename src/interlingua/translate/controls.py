"""Controls for a translation: each run through the same code path, with the band it must land in.

Must-fail controls (the transfer must collapse to chance):
  * shuffled word pairing — B's rows permuted against A's scores before fitting;
  * label shuffle — A's concept fitted on shuffled labels, then translated.
Floors (must be beaten by the real B):
  * off-by-one alignment — B read one token early; the transferred AUROC must drop;
  * random-init B and lexical-only B (trained embeddings, random blocks).
Positive controls (must succeed):
  * A translated to itself — the ceiling;
  * a synthetic B = A·R + noise with a known R — recovery must be exact (R² ≈ 1).

Each control is a dict ``{"value", "band", "must", "passed", ...}``; ``must`` says in words
what it has to do.
"""

from __future__ import annotations

import torch

from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset
from interlingua.concepts.find import fit, shuffle_labels
from interlingua.concepts.methods import Readout
from interlingua.metrics import auroc_null_band
from interlingua.models.controls import lexical_only_copy, random_init_copy
from interlingua.models.loaded import LoadedModel
from interlingua.similarity import r2_score
from interlingua.translate.pairs import WordPairs, paired_words
from interlingua.translate.readout import fit_transfer, transfer_readouts
from interlingua.translate.translate import split_activations, evaluate_readout, recovery, shared_texts


def _chance(dataset: ConceptDataset, split: str = "test") -> list[float]:
    d = dataset.split(split)
    lo, hi = auroc_null_band(int(d.binary.sum()), int((~d.binary).sum()), level=0.99)
    return [round(lo, 4), round(hi, 4)]


def _within(value: float, band: list[float]) -> bool:
    return band[0] <= value <= band[1]


def _widen(band: list[float], other: list[float] | None) -> list[float]:
    if not other:
        return band
    return [round(min(band[0], other[0]), 4), round(max(band[1], other[1]), 4)]


def _must_fail(readouts: list[Readout], model_b: LoadedModel, hook_b: str, dataset: ConceptDataset,
               widen_by: list[float] | None, widened_by: str) -> dict:
    """Mean transfer AUROC of readouts fitted to broken data, against the chance band widened by
    one of B's own nulls (a readout fitted to noise is a random-ish direction, and on templated
    data a random direction can separate the classes by itself)."""
    values = torch.tensor([evaluate_readout(model_b, hook_b, r, dataset)["test"] for r in readouts])
    value = round(float(values.mean()), 4)
    band = _widen(_chance(dataset), widen_by)
    return {"value": value, "runs": [round(float(v), 4) for v in values], "run_sd": round(float(values.std()), 4),
            "band": band, "chance_band": _chance(dataset),
            "must": f"mean transfer AUROC of {len(values)} runs inside the chance band widened by B's {widened_by} band",
            "passed": _within(value, band)}


def shuffled_pairing(pairs: WordPairs, score_a: torch.Tensor, model_b: LoadedModel, hook_b: str,
                     dataset: ConceptDataset, native_b: Concept, *, lam: float, seeds: int = 20) -> dict:
    """A's scores permuted against B's rows before fitting (``seeds`` permutations, one solve).

    A readout fitted to permuted scores is a random direction with a random sign, so single
    runs scatter around chance (widely, on templated text); their mean must sit at chance.
    """
    gen = torch.Generator().manual_seed(0)
    shuffled = torch.stack([score_a[torch.randperm(len(pairs), generator=gen)] for _ in range(seeds)], dim=1)
    readouts = transfer_readouts(pairs.b[hook_b], shuffled, lam=lam)
    return _must_fail(readouts, model_b, hook_b, dataset, native_b.metrics.get("auroc_random_direction_band"),
                      "random-direction")


def label_shuffle(concept_a: Concept, model_a: LoadedModel, pairs: WordPairs, model_b: LoadedModel, hook_b: str,
                  dataset: ConceptDataset, native_b: Concept, *, lam: float, seeds: int = 10) -> dict:
    """A's concept refitted on shuffled labels (``seeds`` shuffles), then translated."""
    train = dataset.split("train")
    x = split_activations(model_a, concept_a.hook, dataset, "train")
    method = concept_a.method if concept_a.method in ("diff_of_means", "logistic", "pca") else "logistic"
    scores = torch.stack([fit(method, x, shuffle_labels(train, torch.Generator().manual_seed(seed)))(pairs.a[concept_a.hook])
                          for seed in range(seeds)], dim=1)
    readouts = transfer_readouts(pairs.b[hook_b], scores, lam=lam)
    return _must_fail(readouts, model_b, hook_b, dataset, native_b.metrics.get("auroc_shuffled_labels_band"),
                      "shuffled-label")


def off_by_one(concept_a: Concept, model_a: LoadedModel, model_b: LoadedModel, hook_b: str, texts: list[str],
               dataset: ConceptDataset, transfer: float, *, lam: float) -> dict:
    """B read one token before each word's last token; the transferred AUROC must drop."""
    shifted = paired_words(model_a, model_b, texts, [concept_a.hook], [hook_b], shift_b=-1)
    readout = fit_transfer(shifted.b[hook_b], concept_a.readout(shifted.a[concept_a.hook]), lam=lam)
    value = evaluate_readout(model_b, hook_b, readout, dataset)["test"]
    return {"value": value, "band": [None, transfer], "must": f"transfer AUROC below the aligned {transfer}",
            "passed": value < transfer}


def floor_model(kind: str, concept_a: Concept, model_a: LoadedModel, model_b: LoadedModel, hook_b: str,
                texts: list[str], dataset: ConceptDataset, auroc_native: float, transfer: float, *, lam: float) -> dict:
    copy = random_init_copy(model_b) if kind == "random_init" else lexical_only_copy(model_b)
    pairs = paired_words(model_a, copy, texts, [concept_a.hook], [hook_b])
    readout = fit_transfer(pairs.b[hook_b], concept_a.readout(pairs.a[concept_a.hook]), lam=lam)
    value = evaluate_readout(copy, hook_b, readout, dataset)["test"]
    rec = recovery(value, auroc_native)
    return {"value": value, "recovery": rec, "band": [None, transfer],
            "must": f"transfer AUROC below the real {model_b.name}'s {transfer} (a floor to beat)",
            "passed": value < transfer}


def synthetic_pair(pairs: WordPairs, score_a: torch.Tensor, concept_a: Concept, *, noise: float = 0.01,
                   seed: int = 0) -> dict:
    """B := A·R + noise with a random R; the transfer must reproduce A's score on held-out words."""
    xa = pairs.a[concept_a.hook].double()
    xa = (xa - xa.mean(0)) / xa.std(0).clamp_min(1e-8)  # still an exact linear function of A
    g = torch.Generator().manual_seed(seed)
    d = xa.shape[1]
    r = torch.randn(d, d + 64, generator=g, dtype=torch.float64) / d ** 0.5
    xb = xa @ r
    xb = xb + noise * xb.std() * torch.randn(xb.shape, generator=g, dtype=torch.float64)
    val = (pairs.doc % 5) == 0
    readout = fit_transfer(xb[~val], score_a[~val], lam=1e-6)
    value = round(r2_score(score_a[val], readout(xb[val])), 4)
    return {"value": value, "band": [0.99, 1.0], "must": "held-out R² ≥ 0.99 (exact recovery)", "passed": value >= 0.99}


def self_translation(concept_a: Concept, model_a: LoadedModel, dataset: ConceptDataset, *, lam: float,
                     n_corpus_docs: int) -> dict:
    texts = shared_texts(dataset, n_corpus_docs)
    pairs = paired_words(model_a, model_a, texts, [concept_a.hook], [concept_a.hook])
    readout = fit_transfer(pairs.b[concept_a.hook], concept_a.readout(pairs.a[concept_a.hook]), lam=lam)
    value = evaluate_readout(model_a, concept_a.hook, readout, dataset)["test"]
    native = concept_a.metrics.get("auroc_test")
    rec = recovery(value, native)
    return {"value": value, "recovery": rec, "band": [0.9, None], "must": "recovery ≥ 0.9 (the ceiling)",
            "passed": rec is not None and rec >= 0.9}

"""Controls of a translation, each a test that can fail, run through the translation's own code.

Three kinds (DESIGN.md, "Evaluation protocol"):

* **must-fail** — the pairing of A's score and B's activations, or A's labels, is destroyed
  ``draws`` times (≥ 200: whole documents reassigned, labels permuted across texts) and each
  draw goes through the whole path: selection of B's hook and λ, fit, evaluation. The
  control *passes* when the real translation lies outside that null distribution, p ≤ 0.01:
  ``shuffled_pairing`` (fidelity and label AUROC on test), ``label_shuffle`` (label AUROC).
* **floors** — a B that cannot hold the concept the way the real B might: read one token
  early (``off_by_one``), a copy with redrawn weights (``random_init_target``), a copy with
  trained embeddings and random blocks (``lexical_only_target``). The control passes when the
  real translation beats the floor by more than the paired bootstrap 95 % interval over test
  pairs (the interval of the difference excludes 0). Random networks still encode token
  identity, so floors are not zeros.
* **positive** — ``synthetic_target``: a B* made from the *real* B activations (rotated by a
  known random orthogonal R, with noise) plus one extra dimension carrying A's score; the
  whole path must find that dimension and reproduce A (fidelity ≥ 0.95, |cos| ≥ 0.9).

Every control is registered with :func:`control` and receives one :class:`ControlContext`; its
record says what it must do (``must``), the statistic, the value, its ``p_value`` or interval,
the null runs, and ``passed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from interlingua.activations import Reader
from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset, SplitData
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel
from interlingua.translate.evaluate import EvalSplit
from interlingua.translate.nulls import ALPHA, document_permutations, null_summary, percentile_interval
from interlingua.translate.pairs import WordPairs
from interlingua.translate.readout import RidgeCV, RidgeSelection
from interlingua.translate.results import ControlResult


@dataclass
class ControlContext:
    """Everything a control needs, already read: no control runs model A or B again.

    ``score_a`` [n] is A's score at the aligned words of the shared text (what the readout is
    fitted to), ``groups`` [n] the group of each word's document (folds keep it whole), ``ridge`` B's side of the selection, ``selection`` the real readout,
    ``splits`` the labelled evaluation texts, ``scores_b[split]`` the real readout's scores
    there, and ``source_scores(labellings)`` A's scores at the aligned words for concepts
    refitted in A on other labellings of its train split (the label-shuffle null).
    """

    concept_a: Concept
    model_a: LoadedModel
    model_b: LoadedModel
    dataset: ConceptDataset
    pairs: WordPairs
    score_a: torch.Tensor
    groups: torch.Tensor
    ridge: RidgeCV
    selection: RidgeSelection
    splits: dict[str, EvalSplit]
    scores_b: dict[str, torch.Tensor]
    hooks_b: list[str]
    read_floor: Callable[[LoadedModel], tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]]
    source_scores: Callable[[list], torch.Tensor]
    weights: torch.Tensor | None = None
    draws: int = 200
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def real(self, split: str = "test") -> tuple[float, float]:
        """(fidelity, label AUROC) of the real translation on ``split``."""
        s, sb = self.splits[split], self.scores_b[split]
        return s.fidelity(sb), s.label_auroc(sb)


Control = Callable[[ControlContext], dict]
CONTROLS: dict[str, tuple[str, Control]] = {}
DEFAULT_CONTROLS = ("shuffled_pairing", "label_shuffle", "synthetic_target")


def control(name: str, kind: str) -> Callable[[Control], Control]:
    """Register a control under ``name`` (``kind``: must_fail, floor or positive)."""
    def register(fn: Control) -> Control:
        CONTROLS[name] = (kind, fn)
        return fn
    return register


def check_names(names) -> tuple[str, ...]:
    """The controls to run (``("all",)`` for every one); unknown names are refused before any work."""
    names = tuple(names)
    if "all" in names:
        return tuple(CONTROLS)
    unknown = sorted(set(names) - set(CONTROLS))
    if unknown:
        raise InterlinguaError(f"unknown control(s) {unknown}; choose from {', '.join(CONTROLS)} or 'all'.")
    return names


def run_controls(names, ctx: ControlContext) -> dict[str, ControlResult]:
    """Run the named controls in order; each result records its kind."""
    return {name: ControlResult.from_json({"kind": CONTROLS[name][0], **CONTROLS[name][1](ctx)})
            for name in check_names(names)}


def _null_test(ctx: ControlContext, sel: RidgeSelection, *, statistics: tuple[str, ...]) -> dict:
    """Place the real translation in the null distribution of ``sel``'s readouts, per split and statistic."""
    out: dict = {}
    for split_name, split in ctx.splits.items():
        null_scores = sel.scores(split.xb)
        real_fid, real_auc = ctx.real(split_name)
        rec = {}
        for stat in statistics:
            if stat == "fidelity":
                real, null = real_fid, [split.fidelity(null_scores[:, j]) for j in range(len(sel))]
            else:
                real, null = real_auc, [split.label_auroc(null_scores[:, j]) for j in range(len(sel))]
            rec[stat] = {"value": None if real != real else round(real, 4), **null_summary(real, torch.tensor(null)),
                         "runs": [round(v, 4) for v in null]}
        out[split_name] = rec
    return out


def _must_fail_record(tested: dict, statistics: tuple[str, ...], what: str, draws: int) -> dict:
    test = tested["test"]
    usable = [s for s in statistics if test[s]["value"] is not None]
    p = max(test[s]["p_value"] for s in usable) if usable else None
    return {
        "statistic": " and ".join(f"{s}_test" for s in usable) or "none",
        "value": test[usable[0]]["value"] if usable else None,
        "p_value": p, "alpha": ALPHA, "draws": draws, "null": what,
        "must": f"the real translation's {' and '.join(usable)} on test above the null of {draws} draws ({what}), "
                f"p ≤ {ALPHA}",
        "passed": p is not None and p <= ALPHA,
        "splits": tested,
    }


@control("shuffled_pairing", "must_fail")
def shuffled_pairing(ctx: ControlContext) -> dict:
    """A's scores given to B's words of *other* documents (whole documents, word order kept), refitted."""
    perms = document_permutations(ctx.pairs.doc, ctx.draws, ctx.seed)
    sel = ctx.ridge.select(ctx.score_a[perms].T.contiguous())
    stats = ("fidelity", "auroc")
    return _must_fail_record(_null_test(ctx, sel, statistics=stats), stats,
                             "A's scores reassigned to other documents, selection and fit re-run", ctx.draws)


@control("label_shuffle", "must_fail")
def label_shuffle(ctx: ControlContext) -> dict:
    """A's concept refitted on its train labels permuted across all texts, then translated the same way.

    The labels are permuted over texts, not flipped within pairs: the two texts of a contrastive
    pair differ along the concept, so any within-pair flip keeps the concept's axis (up to sign)
    and the null would hold the concept itself.
    """
    train = ctx.dataset.split("train")
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    labellings = [SplitData(texts=train.texts, labels=train.labels[torch.randperm(len(train), generator=gen)],
                            groups=train.groups, pairs=None, words=None) for _ in range(ctx.draws)]
    sel = ctx.ridge.select(ctx.source_scores(labellings))
    stats = ("auroc",)
    return _must_fail_record(_null_test(ctx, sel, statistics=stats), stats,
                             "A's concept refitted on train labels permuted across texts, then translated", ctx.draws)


def _floor_record(ctx: ControlContext, floor_scores: dict[str, torch.Tensor], floor_splits: dict[str, EvalSplit],
                  what: str, extra: dict | None = None) -> dict:
    """Real minus floor, with paired bootstrap intervals over each split's pairs."""
    out: dict = {"floor": what, **(extra or {})}
    for name, split in ctx.splits.items():
        real, fl = ctx.scores_b[name].double(), floor_scores[name].double()
        fsplit = floor_splits[name]
        rec = {"fidelity_real": _r(split.fidelity(real)), "fidelity_floor": _r(fsplit.fidelity(fl)),
               "auroc_real": _r(split.label_auroc(real)), "auroc_floor": _r(fsplit.label_auroc(fl))}
        rec["fidelity_difference_ci"] = percentile_interval(
            split.fidelity(real, resampled=True) - fsplit.fidelity(fl, resampled=True))
        rec["auroc_difference_ci"] = percentile_interval(
            split.label_auroc(real, resampled=True) - fsplit.label_auroc(fl, resampled=True))
        out[name] = rec
    test = out["test"]
    stat = "fidelity" if test["fidelity_difference_ci"] is not None else "auroc"
    ci = test[f"{stat}_difference_ci"]
    out.update({"statistic": f"{stat}_test", "value": test[f"{stat}_floor"], "real": test[f"{stat}_real"],
                "difference_ci": ci,
                "must": f"the real translation's {stat} on test above the floor's by more than the paired bootstrap "
                        "95% interval (the interval of the difference excludes 0)",
                "passed": ci is not None and ci[0] > 0})
    return out


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def _translate_into(ctx: ControlContext, xb_shared: dict[str, torch.Tensor], xb_splits: dict[str, dict]
                    ) -> tuple[RidgeSelection, dict[str, torch.Tensor], dict[str, EvalSplit]]:
    """The translation's path (selection, fit, scores on the splits) into another B."""
    ridge = RidgeCV(xb_shared, ctx.groups, lams=ctx.ridge.lams, folds=ctx.ridge.folds, weights=ctx.weights,
                    seed=ctx.seed)
    sel = ridge.select(ctx.score_a)
    splits = {n: EvalSplit(name=n, labels=s.labels, groups=s.groups, score_a=s.score_a, xb=xb_splits[n],
                           native_b=s.native_b, bow=s.bow, n_boot=s.n_boot, seed=s.seed, _counts=s.counts)
              for n, s in ctx.splits.items()}
    scores = {n: sel.scores(splits[n].xb)[:, 0] for n in splits}
    return sel, scores, splits


@control("off_by_one", "floor")
def off_by_one(ctx: ControlContext) -> dict:
    """B read one token before each aligned word's last token while fitting (evaluated as usual)."""
    if not ctx.pairs.b_shifted:
        raise InterlinguaError("off_by_one needs B read one token early (paired_words(..., shifted_b=True)).")
    sel, scores, _ = _translate_into(ctx, ctx.pairs.b_shifted, {n: s.xb for n, s in ctx.splits.items()})
    return _floor_record(ctx, scores, ctx.splits, "B read one token early on the shared text",
                         {"target_hook": sel.hook(0)})


def _model_floor(ctx: ControlContext, kind: str) -> dict:
    from interlingua.models.controls import lexical_only_copy, random_init_copy

    copy = random_init_copy(ctx.model_b) if kind == "random_init" else lexical_only_copy(ctx.model_b)
    xb_shared, xb_splits = ctx.read_floor(copy)
    sel, scores, splits = _translate_into(ctx, xb_shared, xb_splits)
    what = ("a copy of B with every weight redrawn (same mean and std per tensor)" if kind == "random_init"
            else "a copy of B with its trained embeddings and random blocks")
    return _floor_record(ctx, scores, splits, what, {"target_hook": sel.hook(0)})


@control("random_init_target", "floor")
def random_init_target(ctx: ControlContext) -> dict:
    return _model_floor(ctx, "random_init")


@control("lexical_only_target", "floor")
def lexical_only_target(ctx: ControlContext) -> dict:
    return _model_floor(ctx, "lexical_only")


def synthetic_target_data(xb: dict[str, torch.Tensor], score_a: torch.Tensor, *, strength: float = 1.0,
                          noise: float = 0.1, planted_noise: float = 0.01, seed: int = 0
                          ) -> tuple[Callable[[dict, torch.Tensor], dict], int]:
    """The synthetic B*: ``x* = [x R + noise·σ·ε, strength·σ·z(s_A) + planted_noise·σ·ε]`` per hook.

    ``R`` is a random orthogonal matrix (known), σ the mean per-dimension standard deviation
    of ``x R`` on the shared text, ``z(s_A)`` A's score standardised on the shared text. The
    extra (last) dimension carries A's concept; everything else is the real B, rotated. The
    planted dimension's own noise is small (1 %) so that the control fails only when the path
    loses the planted signal, not because A's test scores differ by less than the noise.
    Returns the transform (applied to the shared text and to every evaluation split alike)
    and the index of the planted dimension.
    """
    first = next(iter(xb.values()))
    d = first.shape[1]
    gen = torch.Generator().manual_seed(seed)
    r, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    mu, sd = float(score_a.double().mean()), float(score_a.double().std().clamp_min(1e-12))
    sigma = {h: float((x.double() @ r).std(0).mean()) for h, x in xb.items()}

    def make(xs: dict[str, torch.Tensor], s: torch.Tensor) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed + len(s))
        out = {}
        for h, x in xs.items():
            rot = x.double() @ r
            rot = rot + noise * sigma[h] * torch.randn(rot.shape, generator=g, dtype=torch.float64)
            planted = strength * sigma[h] * (s.double() - mu) / sd
            planted = planted + planted_noise * sigma[h] * torch.randn(len(s), generator=g, dtype=torch.float64)
            out[h] = torch.cat([rot, planted[:, None]], 1).float()
        return out

    return make, d


@control("synthetic_target", "positive")
def synthetic_target(ctx: ControlContext, *, strength: float = 1.0) -> dict:
    """The path from paired words to fidelity on the splits, into a B* whose answer is known.

    B* is built at the hook the real translation chose (λ is chosen again, by the same
    cross-validation); building it at every candidate hook would only repeat the same check.
    """
    hook = ctx.selection.hook(0)
    real = {hook: ctx.pairs.b[hook]}
    make, axis = synthetic_target_data(real, ctx.score_a, strength=strength, seed=ctx.seed)
    xb_shared = make(real, ctx.score_a)
    ridge = RidgeCV(xb_shared, ctx.groups, lams=ctx.ridge.lams, folds=ctx.ridge.folds, weights=ctx.weights,
                    seed=ctx.seed)
    sel = ridge.select(ctx.score_a)
    out: dict = {"strength": strength, "planted_dimension": axis, "target_hook": hook, "lam": sel.lam(0)}
    std = xb_shared[hook].double().std(0)
    w = sel.weight[:, 0].double() * std  # standardised coordinates
    cosine = float(w[axis].abs() / w.norm().clamp_min(1e-300))
    for name, split in ctx.splits.items():
        scores = sel.scores(make({hook: split.xb[hook]}, split.score_a))[:, 0]
        out[name] = {"fidelity": _r(split.fidelity(scores)), "auroc": _r(split.label_auroc(scores))}
    fid = out["test"]["fidelity"]
    out.update({"statistic": "fidelity_test", "value": fid, "abs_cosine_planted": round(cosine, 4),
                "must": "fidelity on test ≥ 0.95 into B* = [B·R + noise, A's score + noise] with |cos| ≥ 0.9 between "
                        "the readout and the planted dimension (standardised)",
                "passed": fid is not None and fid >= 0.95 and cosine >= 0.9})
    return out


def read_floor_factory(reader_for: Callable[[LoadedModel], Reader], pairs: WordPairs, hooks_b: list[str],
                       split_texts: dict[str, list[str]]):
    """A function that reads a floor copy of B on the shared text and the splits, once each."""
    from interlingua.translate.pairs import read_target

    def read(copy: LoadedModel):
        reader = reader_for(copy)
        shared, _, _ = read_target(reader, pairs.alignment, hooks_b)
        return shared, {n: reader.read(t, hooks_b) for n, t in split_texts.items()}

    return read

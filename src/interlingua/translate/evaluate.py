"""Evaluating a translated readout on the concept's labelled splits, with uncertainty.

Two questions, in this order:

1. **Fidelity** — does B's translated score reproduce A's concept on texts neither readout was
   fitted on? ``fidelity`` is the AUROC of B's score against A's *decisions* (A's score above
   its own threshold 0, the logit of a probe or the midpoint of a difference of means), beside
   the rank correlation of the two scores. The readout's optimum is exactly A's score, so this
   is what the method promises.
2. **Agreement with the human labels** — the AUROC of B's score against the labels, and
   recovery r = (AUROC_transfer − 0.5) / (AUROC_native_B − 0.5) against B's own best probe.
   Where A itself is wrong (OOD, say), a faithful translation is wrong the same way.

Every number comes with a paired bootstrap interval over the split's pairs (one set of
resamples for all of them, so differences are paired), and the bag-of-words baseline's AUROC
on the same split stands beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interlingua.metrics import _average_ranks, auroc
from interlingua.translate.nulls import auroc_resampled, bootstrap_counts, percentile_interval
from interlingua.translate.results import SplitResult

MIN_NATIVE_GAP = 0.05  # native AUROC within this of 0.5: recovery is undefined


def recovery(auroc_transfer: float | None, auroc_native: float | None) -> float | None:
    """(AUROC_transfer − 0.5) / (AUROC_native − 0.5); None where native is near chance."""
    if auroc_transfer is None or auroc_native is None or auroc_transfer != auroc_transfer or \
            auroc_native != auroc_native or auroc_native - 0.5 < MIN_NATIVE_GAP:
        return None
    return round((auroc_transfer - 0.5) / (auroc_native - 0.5), 4)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's ρ (Pearson correlation of mid-ranks)."""
    ra, rb = _average_ranks(a.double().flatten()), _average_ranks(b.double().flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()).clamp_min(1e-300))


@dataclass
class EvalSplit:
    """One labelled split of the concept, read at the last token by both models.

    ``score_a`` is A's concept score, ``xb[hook]`` B's activations at each candidate hook,
    ``native_b`` the score of B's own concept (found from the labels), ``groups`` the pair of
    every text (the bootstrap's unit) and ``bow`` the bag-of-words baseline's AUROC.
    """

    name: str
    labels: torch.Tensor
    groups: torch.Tensor
    score_a: torch.Tensor
    xb: dict[str, torch.Tensor]
    native_b: torch.Tensor | None = None
    bow: float | None = None
    n_boot: int = 1000
    seed: int = 0
    _counts: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def decisions_a(self) -> torch.Tensor:
        """A's decisions: its score above its own threshold (0)."""
        return self.score_a > 0

    @property
    def counts(self) -> torch.Tensor:
        """The split's bootstrap resamples (whole pairs) as multiplicities ``[n_boot, n]``, shared by
        every statistic so that differences and ratios are paired."""
        if self._counts is None:
            self._counts = bootstrap_counts(self.groups, self.n_boot, self.seed)
        return self._counts

    def fidelity(self, scores_b: torch.Tensor, resampled: bool = False) -> float | torch.Tensor:
        """AUROC of B's score against A's decisions (NaN where A decides every text alike); with
        ``resampled``, one value per bootstrap resample."""
        if resampled:
            return auroc_resampled(scores_b, self.decisions_a, self.counts)
        return auroc(scores_b, self.decisions_a)

    def label_auroc(self, scores_b: torch.Tensor, resampled: bool = False) -> float | torch.Tensor:
        if resampled:
            return auroc_resampled(scores_b, self.labels, self.counts)
        return auroc(scores_b, self.labels)

    def evaluate(self, scores_b: torch.Tensor) -> SplitResult:
        """Fidelity, label AUROC, recovery and their paired bootstrap intervals for B scores ``[m]``."""
        s = scores_b.double()
        fid = self.fidelity(s)
        a_classes = [int(self.decisions_a.sum()), int((~self.decisions_a).sum())]
        boot = self.label_auroc(s, resampled=True)
        out = {
            "fidelity": _r(fid),
            "fidelity_ci": percentile_interval(self.fidelity(s, resampled=True)) if fid == fid else None,
            "rank_correlation": round(rank_correlation(s, self.score_a), 4),
            "a_decides_positive": a_classes[0], "a_decides_negative": a_classes[1],
            "auroc": _r(self.label_auroc(s)),
            "auroc_ci": percentile_interval(boot),
            "auroc_source": _r(auroc(self.score_a, self.labels)),
            "auroc_bag_of_words": self.bow,
        }
        if fid != fid:
            out["fidelity_undefined"] = f"A decides all {len(self)} {self.name} texts the same way"
        if self.native_b is not None:
            nat = self.native_b.double()
            native = self.label_auroc(nat)
            nat_boot = self.label_auroc(nat, resampled=True)
            defined = (nat_boot - 0.5) >= MIN_NATIVE_GAP
            ratios = (boot[defined] - 0.5) / (nat_boot[defined] - 0.5)
            rec = recovery(out["auroc"], native)
            out.update({
                "auroc_native_target": _r(native),
                "auroc_minus_native": _r(out["auroc"] - native),
                "auroc_minus_native_ci": percentile_interval(boot - nat_boot),
                "recovery": rec,
                "recovery_ci": percentile_interval(ratios) if float(defined.double().mean()) >= 0.9 else None,
                "recovery_defined_in": round(float(defined.double().mean()), 3),
            })
            if rec is None:
                out["recovery_undefined"] = f"B's own probe is near chance on {self.name} (AUROC {_r(native)})"
            elif rec > 1:
                out["recovery_note"] = "B's translated readout beats B's own probe"
        return SplitResult(**out)


def _r(x: float | None) -> float | None:
    return None if x is None or x != x else round(float(x), 4)

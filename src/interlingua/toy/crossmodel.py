"""Cross-model ground truth: interlingua's correspondence methods scored against known features.

Two toy models are trained on the same true features (different seeds, different widths): the
Engineering-Monosemanticity setting, ``N`` sparse features seen through one fixed random
projection ``P`` and decoded by ``y = W₂ ReLU(W₁ xP + b₁)`` with ``k`` neurons
(:class:`~interlingua.toy.models.ProjectedMLP`). Because the features are known, what every unit
represents is known too: its *profile* ``r_j ∈ ℝᴺ``, its activation when one true feature alone
is on (:func:`unit_profiles`). Against that truth:

* **readout transfer** (:func:`readout_transfer`): a probe for feature ``i`` on A's units is carried to
  B by :func:`interlingua.translate.readout.transfer_readouts` (the one-solve form of ``fit_transfer``
  with ``pos_weight=1``: ridge on B's standardised activations with A's score as the target, labels
  unused). Scored by held-out AUROC and correlation with the true feature, and by which true
  feature each transferred readout tracks (precision and recall of the readout correspondence);
  the null is the same fit on shuffled pairings.
* **unit matching** (:func:`unit_matching`): Pearson correlation of A's and B's units on the same
  inputs, one-to-one Hungarian matching, claims above a threshold; precision and recall against
  the true unit correspondence (profiles within ``κ``) and against the features the units
  represent; the null is the same matching with B's rows shuffled.
* **global similarity** (:func:`global_similarity`): debiased CKA, mutual k-NN and cross-validated
  ridge R², each next to its shuffled-pairing permutation null (:mod:`interlingua.similarity`).

A random-initialised B is the control: its units represent no single feature, so every unit
correspondence claimed with it is false, even where the correlations clear the shuffled null.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from interlingua.metrics import auroc
from interlingua.similarity import cka_debiased, mutual_knn, permutation_test, ridge_r2_cv
from interlingua.toy import metrics as M
from interlingua.toy.data import tms_batch, unit_directions
from interlingua.toy.models import ProjectedMLP
from interlingua.toy.sae import train_sae
from interlingua.toy.train import ProjectedRun, single_thread, train_projected
from interlingua.translate.readout import transfer_readouts
from interlingua.translate.translate import recovery

Units = Callable[[Tensor], Tensor]
"""Maps true-feature inputs ``x`` of shape ``(batch, N)`` to unit activations ``(batch, k)``."""


@dataclass(frozen=True)
class ProjectedWorld:
    """The shared truth: ``N`` features ``x_i = u_i z_i`` (``u_i ~ U[0,1)``, ``z_i ~ Bernoulli(p)``)
    seen through the fixed random projection ``P ∈ ℝ^{N×d}`` (unit rows, its own seed), and how
    models are trained on it (AdamW, no weight decay, feature-decoding loss ``E‖x − y‖²``)."""

    n_features: int = 32
    input_dim: int = 16
    probability: float = 0.03
    projection_seed: int = 11
    steps: int = 6000
    batch: int = 256
    lr: float = 1e-2

    def projection(self) -> Tensor:
        return unit_directions(self.n_features, self.input_dim, self.projection_seed)

    def probabilities(self) -> Tensor:
        return torch.full((self.n_features,), self.probability)

    def sample(self, n: int, seed: int) -> Tensor:
        """``n`` feature vectors ``x`` (the models' inputs are ``x P``; :class:`ProjectedMLP` applies ``P``)."""
        return tms_batch(n, self.probabilities(), torch.Generator().manual_seed(seed))


def trained_projected(world: ProjectedWorld, k: int, seed: int, bias_init: float = 0.0,
                      snapshots: int = 4) -> tuple[ProjectedMLP, ProjectedRun]:
    """A :class:`ProjectedMLP` with ``k`` neurons trained on ``world``, with ``snapshots`` parameter
    copies along the way. Memoised, so checks that use the same model share one training run."""
    return _trained_projected(world, int(k), int(seed), float(bias_init), int(snapshots))


@functools.cache
def _trained_projected(world: ProjectedWorld, k: int, seed: int, bias_init: float,
                       snapshots: int) -> tuple[ProjectedMLP, ProjectedRun]:
    model = ProjectedMLP(world.projection(), k, bias_init=bias_init, seed=seed)
    with single_thread():
        run = train_projected(model, world.probabilities(), world.steps, batch=world.batch, lr=world.lr,
                              seed=seed, snapshots=snapshots)
    return model, run


def random_projected(world: ProjectedWorld, k: int, seed: int) -> ProjectedMLP:
    """The control: the same architecture at its random initialisation (never trained)."""
    return ProjectedMLP(world.projection(), k, seed=seed)


def unit_profiles(units: Units, n_features: int) -> Tensor:
    """Ground-truth profiles ``r_ji = u_j(e_i)``: unit ``j``'s activation when only feature ``i`` is
    on, at its largest value 1. Shape ``(units, N)``."""
    with torch.no_grad():
        return units(torch.eye(n_features)).T.double()


def sae_units(model: ProjectedMLP, world: ProjectedWorld, ratio: float = 2.0, alpha: float = 0.03,
              steps: int = 2000, seed: int = 0) -> Units:
    """Latents of a ReLU-L1 SAE (:mod:`interlingua.toy.sae`) with ``ratio·N`` latents, trained on
    ``model``'s neuron activations scaled to unit mean squared norm."""
    with torch.no_grad():
        scale = float(model.hidden(world.sample(8192, seed + 17)).pow(2).sum(1).mean().sqrt().clamp(min=1e-12))

    def sample(batch: int, g: torch.Generator) -> Tensor:
        with torch.no_grad():
            return model.hidden(tms_batch(batch, world.probabilities(), g)) / scale

    with single_thread():
        sae = train_sae(sample, model.W1.shape[0], int(ratio * world.n_features), alpha, steps, batch=512,
                        lr=3e-3, seed=seed).sae

    def latents(x: Tensor) -> Tensor:
        with torch.no_grad():
            return sae.encode(model.hidden(x) / scale)
    return latents


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def _scores(readouts, h: Tensor) -> Tensor:
    return torch.stack([r(h) for r in readouts], dim=1).double()


def readout_transfer(h_a: Tensor, h_b: Tensor, codes: Tensor, h_a_test: Tensor, h_b_test: Tensor,
                     codes_test: Tensor, *, lam: float = 1e-3, seed: int = 0) -> dict:
    """Carry A's per-feature probes to B and score them against the true features.

    A's probe for feature ``i`` is ridge regression of ``c_i`` on A's standardised units; its
    score ``s_i`` on the shared training inputs is the target of B's transferred readout
    (labels unused on B's side). On held-out inputs: ``auroc_*`` is the mean over features of
    AUROC(readout, ``c_i > 0``) for A's probe, the transfer, B's own probe fitted to the truth
    (``native_B``) and the transfer fitted to shuffled pairings (the null); ``recovery`` is the
    mean of ``(AUROC_transfer − ½)/(AUROC_native − ½)``. The readout correspondence: a transferred
    readout is *claimed* when its largest correlation with any true feature exceeds the largest
    absolute correlation any shuffled-pairing readout reaches; it is *correct* when that feature
    is ``i``. ``precision = correct / claimed``; ``recall = correct / #{i: A's probe tracks i}``.
    """
    n_features = codes.shape[1]
    probe_a = transfer_readouts(h_a, codes, lam=lam)
    score_a = _scores(probe_a, h_a)
    transferred = transfer_readouts(h_b, score_a, lam=lam)
    native_b = transfer_readouts(h_b, codes, lam=lam)
    perm = torch.randperm(len(h_b), generator=torch.Generator().manual_seed(seed))
    shuffled = transfer_readouts(h_b, score_a[perm], lam=lam)
    test = {"A": _scores(probe_a, h_a_test), "transfer": _scores(transferred, h_b_test),
            "native_B": _scores(native_b, h_b_test), "shuffled": _scores(shuffled, h_b_test)}
    fired = codes_test > 0
    au = {k: torch.tensor([auroc(s[:, i], fired[:, i]) for i in range(n_features)]) for k, s in test.items()}
    corr = {k: M.correlation_matrix(s, codes_test) for k, s in test.items()}
    null_max = float(corr["shuffled"].abs().max())
    ids = torch.arange(n_features)

    def tracked(c: Tensor) -> tuple[Tensor, Tensor]:
        best = c.max(1)
        return best.values > null_max, best.indices == ids

    claimed, right = tracked(corr["transfer"])
    a_claimed, a_right = tracked(corr["A"])
    correct = int((claimed & right).sum())
    a_tracks = int((a_claimed & a_right).sum())
    rec = [recovery(float(t), float(n)) for t, n in zip(au["transfer"], au["native_B"])]
    rec = [r for r in rec if r is not None]
    return {
        "auroc_probe_A": _r(au["A"].mean()), "auroc_transfer": _r(au["transfer"].mean()),
        "auroc_transfer_min": _r(au["transfer"].min()), "auroc_native_B": _r(au["native_B"].mean()),
        "auroc_shuffled_pairing": _r(au["shuffled"].mean()),
        "recovery": _r(sum(rec) / len(rec)) if rec else None,
        "corr_with_feature": _r(corr["transfer"].diagonal().mean()),
        "shuffled_max_abs_corr": _r(null_max),
        "claimed": int(claimed.sum()), "correct": correct, "tracked_by_A": a_tracks,
        "precision": _r(correct / int(claimed.sum())) if claimed.any() else None,
        "recall": _r(correct / a_tracks) if a_tracks else None,
    }


def _corr_scores(c: M.Correspondence) -> dict:
    d = asdict(c)
    return d | {"precision": _r(c.precision), "recall": _r(c.recall)}


def unit_matching(h_a: Tensor, h_b: Tensor, prof_a: Tensor, prof_b: Tensor, *, threshold: float = 0.8,
                  kappa: float = 0.9, seed: int = 0) -> dict:
    """Hungarian matching of A's and B's units by activation correlation, scored against the truth.

    ``C = corr(h_a, h_b)`` on shared inputs; ``π`` maximises ``Σ_j C_{j,π(j)}``; a matched pair is
    *claimed* when ``C_{j,π(j)} > τ``, reported at ``τ = threshold`` and at the shuffled-pairing
    threshold ``τ₀ = max |C⁰|`` (``C⁰``: the same correlations with B's rows permuted).
    Truth: units ``j`` and ``l`` correspond when their profiles agree, ``cos(r_j, r_l) ≥ κ``
    (:func:`~interlingua.toy.metrics.correspondence_scores`), and represent feature ``i`` when
    ``cos(r_j, e_i) ≥ κ`` (:func:`~interlingua.toy.metrics.feature_correspondence_scores`).
    The null row scores the full Hungarian matching of ``C⁰`` (no threshold): chance precision.
    """
    C = M.correlation_matrix(h_a, h_b)
    perm = torch.randperm(len(h_b), generator=torch.Generator().manual_seed(seed))
    C0 = M.correlation_matrix(h_a, h_b[perm])
    tau0 = float(C0.abs().max())
    live_a, live_b = prof_a.sum(1) > 1e-12, prof_b.sum(1) > 1e-12
    truth = (M.cosine_matrix(prof_a, prof_b) >= kappa) & live_a[:, None] & live_b[None, :]
    rep_a, rep_b = M.represented_features(prof_a, kappa), M.represented_features(prof_b, kappa)
    rows, cols = M.hungarian_match(C)
    values = C[rows, cols]
    out = {"units": [len(prof_a), len(prof_b)], "live": [int(live_a.sum()), int(live_b.sum())],
           "monosemantic": [int(rep_a.any(1).sum()), int(rep_b.any(1).sum())],
           "features_represented": [int(rep_a.any(0).sum()), int(rep_b.any(0).sum())],
           "shuffled_threshold": _r(tau0)}
    for name, tau in (("at_threshold", threshold), ("at_shuffled_threshold", tau0)):
        keep = values > tau
        out[name] = {"tau": _r(tau), "units": _corr_scores(M.correspondence_scores(rows[keep], cols[keep], truth)),
                     "features": _corr_scores(M.feature_correspondence_scores(rows[keep], cols[keep], rep_a, rep_b))}
    r0, c0 = M.hungarian_match(C0)
    out["shuffled_pairing"] = {
        "claimed_at_threshold": int((C0[r0, c0] > threshold).sum()),
        "unit_precision": _r(M.correspondence_scores(r0, c0, truth).precision),
        "feature_precision": _r(M.feature_correspondence_scores(r0, c0, rep_a, rep_b).precision)}
    return out


def global_similarity(h_a: Tensor, h_b: Tensor, *, n_kernel: int = 512, n_perm: int = 20, seed: int = 0) -> dict:
    """Debiased CKA, mutual k-NN (k=10) and 5-fold ridge R² (A → B), each with its shuffled-pairing
    null (:func:`interlingua.similarity.permutation_test`: value, null mean and band, z, p).

    CKA and k-NN use the first ``n_kernel`` rows (their cost grows as rows²); ridge R² uses all the
    rows given, because sparse units fire on few rows and a fold with only one or two firings of a
    unit standardises it into huge values (R² of −70 at 512 rows here, 0.9 at 2048).
    """
    a, b = h_a[:n_kernel], h_b[:n_kernel]
    return {"cka_debiased": permutation_test(cka_debiased, a, b, n_perm=n_perm, seed=seed),
            "mutual_knn": permutation_test(mutual_knn, a, b, n_perm=n_perm, seed=seed),
            "ridge_r2_cv": permutation_test(ridge_r2_cv, h_a, h_b, n_perm=n_perm, seed=seed)}


def compare_models(units_a: Units, units_b: Units, world: ProjectedWorld, *, n_train: int = 4096,
                   n_test: int = 4096, n_similarity: int = 2048, threshold: float = 0.8, kappa: float = 0.9,
                   lam: float = 1e-3, seed: int = 0) -> dict:
    """All three method families on one pair of models, on fresh samples of the shared features."""
    x, x_test = world.sample(n_train, 1000 + seed), world.sample(n_test, 2000 + seed)
    with torch.no_grad():
        h_a, h_b = units_a(x).double(), units_b(x).double()
        h_a_test, h_b_test = units_a(x_test).double(), units_b(x_test).double()
    prof_a, prof_b = unit_profiles(units_a, world.n_features), unit_profiles(units_b, world.n_features)
    return {
        "readout_transfer": readout_transfer(h_a, h_b, x, h_a_test, h_b_test, x_test, lam=lam, seed=seed),
        "unit_matching": unit_matching(h_a, h_b, prof_a, prof_b, threshold=threshold, kappa=kappa, seed=seed),
        "similarity": global_similarity(h_a_test[:n_similarity], h_b_test[:n_similarity], seed=seed),
    }

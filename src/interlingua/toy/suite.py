"""The paper suite: each published toy-model result as an automated check with stated tolerances.

A check is a plain function ``fn(seeds) -> (passed, measured, expected)``; :func:`run_checks` times
it and returns a :class:`CheckResult`. Tiers: ``fast`` (CI), ``slow`` (CI, marked slow) and
``all`` (only with ``--all``). Where equally good local minima exist, each setting is trained
with several seeds and the lowest-loss instance is judged, as the papers report optima.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from interlingua.results import Record, record
from interlingua.toy import metrics as M
from interlingua.toy.crossmodel import (
    ProjectedWorld,
    compare_models,
    random_projected,
    sae_units,
    trained_projected,
)
from interlingua.toy.data import GaussianControl, PlantedFeatures, planted_features, tms_batch
from interlingua.toy.geometry import polytope_zoo, tegum_product
from interlingua.toy.models import FactorisedModel, ProjectedMLP, TiedSuperposition
from interlingua.toy.sae import pca_directions, train_sae
from interlingua.toy.train import (
    low_rank_target,
    single_thread,
    train_factorised,
    train_fixed_dataset,
    train_projected,
    train_tms,
)

Outcome = tuple[bool, dict, str]


@record
class CheckResult(Record):
    """One check's outcome: whether it ``passed``, what it ``measured`` against what was ``expected``
    (the paper's result with its tolerance), its ``tier`` and the ``paper`` it reproduces."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"paper"})

    name: str
    passed: bool
    measured: dict
    expected: str
    seconds: float
    tier: str
    paper: str | None = None

    def line(self) -> dict:
        """The record ``toy reproduce --json`` prints per check."""
        return {"name": self.name, "passed": self.passed, "measured": self.measured, "expected": self.expected,
                "seconds": self.seconds}


@record
class SuiteFigure(Record):
    """A figure written beside the results: its PNG ``file``, the ``svg`` file the report embeds, the
    plot ``kind`` and a ``caption``."""

    file: str = ""
    svg: str = ""
    kind: str = "lines"
    caption: str = ""


@record
class ToyReproduction(Record):
    """What ``interlingua toy reproduce`` ran (``toy_reproduce.json``): every check's result and the figures."""

    seeds: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    figures: list[SuiteFigure] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[int], Outcome]
    tier: str
    paper: str
    figure: Callable[[str], list[str]] | None = field(default=None)


CHECKS: dict[str, Check] = {}
TIERS = ("fast", "slow", "all")
DEFAULT_SEEDS = 4


def check(tier: str, paper: str):
    def register(fn: Callable[[int], Outcome]) -> Callable[[int], Outcome]:
        CHECKS[fn.__name__] = Check(fn.__name__, fn, tier, paper)
        return fn
    return register


def _r(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


# ---------------------------------------------------------------- Toy Models of Superposition

TMS_STEPS, TMS_LR = 2000, 1e-2


@dataclass(frozen=True)
class TMSLevel:
    """The lowest-loss of ``seeds`` instances trained at one feature probability."""

    probability: float
    W: torch.Tensor
    b: torch.Tensor
    loss: float


@functools.cache
def tms_sweep(n: int, m: int, decay: float, probabilities: tuple[float, ...], seeds: int,
              noise_std: float = 0.0, steps: int = TMS_STEPS, lr: float = TMS_LR) -> list[TMSLevel]:
    """Train ``seeds`` instances per probability (all batched) with importance ``decayⁱ``."""
    prob = torch.tensor([p for p in probabilities for _ in range(seeds)])[:, None].expand(-1, n)
    importance = decay ** torch.arange(n, dtype=torch.float32)
    model = TiedSuperposition(n, m, instances=len(prob), seed=0)
    with single_thread():
        losses = train_tms(model, prob, importance, steps, lr=lr, noise_std=noise_std, seed=1)
    levels = []
    for j, p in enumerate(probabilities):
        best = j * seeds + int(losses[j * seeds:(j + 1) * seeds].argmin())
        levels.append(TMSLevel(p, model.W[best].detach(), model.b[best].detach(), float(losses[best])))
    return levels


def _n_rep(W: torch.Tensor) -> int:
    return int((M.feature_norms(W) > 0.5).sum())


@check("fast", "Elhage et al. 2022, intro figure (n=5, m=2)")
def tms_intro_n5_m2(seeds: int) -> Outcome:
    dense, sparse = intro_pair(seeds)
    measured = {"dense_n_rep": _n_rep(dense.W), "dense_D_star": _r(M.dimensions_per_feature(dense.W)),
                "sparse_n_rep": _n_rep(sparse.W), "sparse_D_star": _r(M.dimensions_per_feature(sparse.W)),
                "sparse_D_i": [_r(d, 2) for d in M.feature_dimensionality(sparse.W)]}
    passed = (measured["dense_n_rep"] == 2 and 0.97 <= measured["dense_D_star"] <= 1.03
              and measured["sparse_n_rep"] >= 4 and measured["sparse_D_star"] <= 0.55)
    return passed, measured, "p=1: 2 features, D*∈[0.97,1.03]; p=0.05: ≥4 features, D*≤0.55"


SWEEP = (1.0, 0.3, 0.1, 0.03, 0.01)
INTRO_LEVELS = tuple(float(20 ** (-k / 9)) for k in range(10))  # p = 1 … 0.05
GEOMETRY_PROBS = tuple(float(20 ** (-k / 19)) for k in (0, 5, 7, 11, 14))  # 1/(1−S) = 1, 2.2, 3.0, 5.7, 9.1


def intro_pair(seeds: int) -> list[TMSLevel]:
    """n=5, m=2, I=0.9ⁱ at p = 1 and 0.05 (the fast check)."""
    return tms_sweep(5, 2, 0.9, (1.0, 0.05), seeds)


def intro_sweep(seeds: int) -> list[TMSLevel]:
    """n=5, m=2, I=0.9ⁱ at ten densities p = 20^(−k/9) (the ``--all`` check and the figure)."""
    return tms_sweep(5, 2, 0.9, INTRO_LEVELS, seeds, steps=4000)


def sparsity_sweep(seeds: int) -> list[TMSLevel]:
    """n=20, m=5, I=0.7ⁱ over :data:`SWEEP`."""
    return tms_sweep(20, 5, 0.7, SWEEP, seeds)


def geometry_sweep() -> list[TMSLevel]:
    """n=200, m=20, uniform importance, one seed, 3000 steps at :data:`GEOMETRY_PROBS`."""
    return tms_sweep(200, 20, 1.0, GEOMETRY_PROBS, 1, steps=3000)


@check("fast", "Elhage et al. 2022, superposition vs sparsity (n=20, m=5)")
def tms_sparsity_sweep_n20_m5(seeds: int) -> Outcome:
    levels = sparsity_sweep(seeds)
    n_rep = [_n_rep(lv.W) for lv in levels]
    sum_d = [float(M.feature_dimensionality(lv.W)[M.feature_norms(lv.W) > 0.5].sum()) for lv in levels]
    monotone = all(b >= a - 1 for a, b in zip(n_rep, n_rep[1:]))
    passed = (n_rep[0] == 5 and monotone and n_rep[2] >= 8 and n_rep[-1] >= 11
              and all(0.95 * 5 <= s <= 5 + 1e-3 for s in sum_d))
    measured = {"probability": list(SWEEP), "n_rep": n_rep, "sum_D_rep": [_r(s) for s in sum_d],
                "D_star": [_r(M.dimensions_per_feature(lv.W)) for lv in levels],
                "features_per_dim": [_r(M.features_per_dimension(lv.W), 2) for lv in levels]}
    return passed, measured, ("n_rep=5 at p=1, non-decreasing (±1) as p falls, ≥8 at p=0.1, ≥11 at p=0.01; "
                              "Σ_rep D_i ∈ [0.95m, m]")


@check("fast", "Scherlis et al. 2022 / Elhage et al. 2022, capacity allocation by importance")
def tms_importance_allocation(seeds: int) -> Outcome:
    level = tms_sweep(20, 5, 0.7, (0.3,), seeds, steps=3000)[0]  # S = 0.7
    d = M.feature_dimensionality(level.W)
    worst_rise = float((d[1:] - d[:-1]).max())
    passed = bool(d[0] >= 0.95 and worst_rise <= 0.15 and d[10:].max() <= 0.05)
    return passed, {"D_i": [_r(x, 2) for x in d], "largest_rise_in_rank": _r(worst_rise)}, \
        "S=0.7: most important D≥0.95, D_i non-increasing in importance (±0.15), features 11-20 D≤0.05"


@check("fast", "Elhage et al. 2022, uniform polytopes (analytic)")
def polytope_dimensionalities(seeds: int) -> Outcome:
    zoo = polytope_zoo()
    W = tegum_product(*(w for w, _ in zoo.values()))
    d = M.feature_dimensionality(W)
    expected = torch.cat([torch.full((len(w),), e, dtype=torch.float64) for w, e in zoo.values()])
    err = float((d - expected).abs().max())
    measured = {name: _r(M.feature_dimensionality(w).mean(), 4) for name, (w, _) in zoo.items()}
    measured |= {"max_error": err, "sum_D": _r(d.sum(), 6), "dims": W.shape[1]}
    return err < 1e-12 and abs(float(d.sum()) - W.shape[1]) < 1e-9, measured, \
        "D_i = 1, 3/4, 2/3, 1/2, 2/5, 3/8 to 1e-12 inside one tegum product; Σ D_i = dims"


@check("slow", "Elhage et al. 2022, n=2 phase diagram corners (n=2, m=1)")
def tms_phase_diagram_corners(seeds: int) -> Outcome:
    """Dense data: the second feature is dropped if less important, gets the dimension if more."""
    cells = {}
    for r in (0.3, 3.0):
        importance = torch.tensor([1.0, r])
        model = TiedSuperposition(2, 1, instances=seeds, seed=0)
        with single_thread():
            train_tms(model, torch.ones(seeds, 2), importance, 2000, lr=1e-2, seed=2)
        norms = model.W.detach().norm(dim=2)
        cells[r] = ["dedicated" if n2 > 0.5 and n1 < 0.5 else "absent" if n2 < 0.5 and n1 > 0.5 else "other"
                    for n1, n2 in norms.tolist()]
    passed = all(c == "absent" for c in cells[0.3]) and all(c == "dedicated" for c in cells[3.0])
    return passed, {"p=1,r=0.3": cells[0.3], "p=1,r=3": cells[3.0]}, \
        "p=1: r<1 → feature 2 absent, r>1 → feature 2 dedicated (every seed)"


@check("slow", "Bricken et al. 2023 / Jermyn et al. 2022 comments: input noise → negative biases")
def noise_negative_bias(seeds: int) -> Outcome:
    sigmas = (0.0, 0.1, 0.2)
    stats = []
    for s in sigmas:
        level = tms_sweep(20, 5, 0.7, (0.1,), seeds, noise_std=s)[0]
        stats.append(M.bias_statistics(level.W, level.b, noise_std=s))
    means = [st.mean for st in stats]
    rel = [_r(sum(st.relative_to_noise) / len(st.relative_to_noise), 2) if st.relative_to_noise else None
           for st in stats]
    passed = means[1] <= -0.05 and means[2] < means[1] and abs(means[0]) < 0.05
    return passed, {"sigma": list(sigmas), "mean_bias": [_r(x) for x in means],
                    "n_rep": [st.represented for st in stats], "bias_over_preact_noise_std": rel}, \
        "p=0.1: mean bias of represented features ≈0 (|b̄|<0.05) without noise, ≤−0.05 at σ=0.1, lower at σ=0.2"


@check("all", "Elhage et al. 2022, intro figure over 10 sparsity levels (n=5, m=2)")
def tms_intro_n5_m2_sweep(seeds: int) -> Outcome:
    levels = intro_sweep(seeds)
    n_rep = [_n_rep(lv.W) for lv in levels]
    d_star = [M.dimensions_per_feature(lv.W) for lv in levels]
    sparse = [lv for lv in levels if lv.probability <= 0.1]
    # sparse optima: antipodal pairs (D = 1/2) or a pentagon (D = 2/5) for every represented feature
    shapes = [sorted(_r(d, 2) for d, rep in zip(M.feature_dimensionality(lv.W), M.feature_norms(lv.W) > 0.5) if rep)
              for lv in sparse]
    polygon = all(all(min(abs(d - 0.5), abs(d - 0.4)) <= 0.05 for d in ds) for ds in shapes)
    passed = (n_rep[0] == 2 and 0.97 <= d_star[0] <= 1.03 and all(b >= a - 1 for a, b in zip(n_rep, n_rep[1:]))
              and all(_n_rep(lv.W) >= 4 and M.dimensions_per_feature(lv.W) <= 0.55 for lv in sparse) and polygon)
    return passed, {"probability": [_r(p) for p in INTRO_LEVELS], "n_rep": n_rep, "D_star": [_r(d) for d in d_star],
                    "sparse_D_i": shapes}, \
        ("p=1: 2 features, D*∈[0.97,1.03]; n_rep non-decreasing (±1) as p falls; p≤0.1: ≥4 features, D*≤0.55, "
         "each represented feature at D=1/2 (antipodal pair) or 2/5 (pentagon) ±0.05")


def _largest_line(d: torch.Tensor, width: float = 0.02) -> tuple[int, float]:
    """The most populated value of ``D_i`` (a "line" in Elhage's geometry plot): (count, value)."""
    centres = d[d > 0.05]
    if not len(centres):
        return 0, 0.0
    counts = ((centres[:, None] - centres[None, :]).abs() <= width).sum(1)
    j = int(counts.argmax())
    return int(counts[j]), float(centres[j])


@check("all", "Elhage et al. 2022, feature geometry: D* sticky at 1/2, D_i on lines (n=200, m=20)")
def tms_feature_geometry_n200_m20(seeds: int) -> Outcome:
    levels = geometry_sweep()
    m = 20
    rows = []
    for lv in levels:
        d = M.feature_dimensionality(lv.W).double()
        count, value = _largest_line(d)
        rows.append({"inv_density": _r(1 / lv.probability, 2), "D_star": _r(M.dimensions_per_feature(lv.W)),
                     "sum_D": _r(d.sum()), "features_per_dim_si": _r(M.features_per_dimension(lv.W), 2),
                     "at_half": int(((d - 0.5).abs() <= 0.02).sum()), "largest_line": [count, _r(value)]})
    sticky = [r for r in rows if 2 <= r["inv_density"] <= 3.5]
    sparse = [r for r in rows if r["inv_density"] > 3.5]
    passed = (0.97 <= rows[0]["D_star"] <= 1.03 and all(0.98 * m <= r["sum_D"] <= m + 1e-3 for r in rows)
              and all(0.46 <= r["D_star"] <= 0.54 and r["at_half"] >= 30 for r in sticky)
              and all(a["D_star"] > b["D_star"] for a, b in zip(sticky[-1:] + sparse, sparse))
              and all(r["largest_line"][0] >= 20 for r in sparse))
    return passed, {"levels": rows}, \
        ("D*∈[0.97,1.03] when dense; Σ_i D_i ∈ [0.98m, m] at every level; D*∈[0.46,0.54] with ≥30 features at "
         "D=1/2±0.02 for 1/(1−S)∈[2, 3.5]; D* falls beyond, where ≥20 features share one D value (±0.02)")


PHASE_P, PHASE_R = (1.0, 0.3, 0.1, 0.03, 0.01), (0.3, 0.7, 1.0, 1.5, 3.0)


@functools.cache
def phase_grid(seeds: int, steps: int = 4000) -> dict[tuple[float, float], tuple[list[str], str]]:
    """The n=2, m=1 phase diagram: per (density p, relative importance r) the class of each seed's
    solution and of the lowest-loss one: ``S`` antipodal superposition, ``D`` feature 2 dedicated,
    ``-`` feature 2 absent, ``?`` both represented with the same sign, ``0`` neither."""
    cells = [(p, r) for p in PHASE_P for r in PHASE_R]
    prob = torch.tensor([p for p, _ in cells for _ in range(seeds)])[:, None].expand(-1, 2)
    importance = torch.tensor([[1.0, r] for _, r in cells for _ in range(seeds)])
    model = TiedSuperposition(2, 1, instances=len(prob), seed=0)
    with single_thread():
        losses = train_tms(model, prob, importance, steps, lr=1e-2, seed=2)
    W = model.W.detach()[:, :, 0]

    def kind(w1: float, w2: float) -> str:
        if abs(w1) > 0.5 and abs(w2) > 0.5:
            return "S" if w1 * w2 < 0 else "?"
        return "D" if abs(w2) > 0.5 else "-" if abs(w1) > 0.5 else "0"

    out = {}
    for c, cell in enumerate(cells):
        sl = slice(c * seeds, (c + 1) * seeds)
        kinds = [kind(*w) for w in W[sl].tolist()]
        out[cell] = (kinds, kinds[int(losses[sl].argmin())])
    return out


@check("all", "Elhage et al. 2022, n=2 phase diagram: 5 densities × 5 relative importances")
def tms_phase_diagram_grid(seeds: int) -> Outcome:
    grid = phase_grid(max(seeds, 3))
    best = {cell: b for cell, (_, b) in grid.items()}
    dense_ok = all(best[(1.0, r)] == ("-" if r < 1 else "D") for r in PHASE_R if r != 1.0)
    sparse_ok = all(best[(p, r)] == "S" for p in (0.3, 0.1, 0.03) for r in (0.7, 1.0, 1.5))
    table = {f"p={p:g}": " ".join("".join(grid[(p, r)][0]) + "/" + best[(p, r)] for r in PHASE_R) for p in PHASE_P}
    return dense_ok and sparse_ok, {"relative_importance": list(PHASE_R), "cells_seeds/best": table}, \
        ("lowest-loss seed per cell: p=1 → feature 2 absent for r<1, dedicated for r>1; p∈{0.3, 0.1, 0.03}, "
         "r∈{0.7, 1, 1.5} → antipodal superposition (p=0.01 reported, not gated: rare features under-trained)")


@check("all", "Bricken et al. 2023 / Jermyn et al. 2022 comments: input noise σ = 0 … 0.4 (n=20, m=5, p=0.1)")
def noise_negative_bias_sweep(seeds: int) -> Outcome:
    sigmas = (0.0, 0.05, 0.1, 0.2, 0.4)
    stats = [M.bias_statistics(lv.W, lv.b, noise_std=s) for s in sigmas
             for lv in tms_sweep(20, 5, 0.7, (0.1,), seeds, noise_std=s)]
    means = [st.mean for st in stats]
    n_rep = [st.represented for st in stats]
    rel = [_r(sum(st.relative_to_noise) / len(st.relative_to_noise), 2) if st.relative_to_noise else None
           for st in stats]
    passed = (abs(means[0]) < 0.05 and all(b <= a + 0.03 for a, b in zip(means[:4], means[1:4])) and means[3] <= -0.15
              and all(b <= a + 1 for a, b in zip(n_rep, n_rep[1:])) and n_rep[-1] < n_rep[0])
    return passed, {"sigma": list(sigmas), "mean_bias": [_r(x) for x in means], "n_rep": n_rep,
                    "bias_over_preact_noise_std": rel}, \
        ("mean bias of represented features ≈0 without noise, non-increasing (±0.03) up to σ=0.2 where it is ≤−0.15; "
         "features represented non-increasing (±1) in σ and fewer at σ=0.4 than at 0")


# ---------------------------------------------------------------- untied models and the scale sanity check

@check("fast", "Casper 2023 critique of features-per-dimension; Jermyn et al. 2022 untied model")
def frobenius_scale_sanity(seeds: int) -> Outcome:
    """Rescaling one layer by c and the next by 1/c keeps the function; the Frobenius measure moves."""
    from interlingua.toy.data import unit_directions

    n, d, k, c = 20, 10, 40, 3.0
    model = ProjectedMLP(unit_directions(n, d, seed=3), k, seed=0)
    with single_thread():
        train_projected(model, torch.full((n,), 0.05), 300, lr=3e-3, seed=0)
    g = torch.Generator().manual_seed(4)
    lam = torch.exp(torch.randn(k, generator=g))
    x = tms_batch(256, torch.full((n,), 0.05), g)
    W1, b1, W2 = (t.detach() for t in (model.W1, model.b1, model.W2))
    before = model(x).detach()

    def fpd_frob(w1):
        return M.frobenius_features_per_dimension(w1.T)  # ‖W1‖²_F / k

    def fpd_canon(w1, w2, b):
        w1c, _, _ = M.canonicalise_neurons(w1, w2, b)
        return M.features_per_dimension(model.projection @ w1c.T)

    with torch.no_grad():
        model.W1.mul_(lam[:, None]), model.b1.mul_(lam), model.W2.div_(lam[None, :])
        drift = float((model(x) - before).abs().max())
    measured = {
        "function_change": drift,
        "frobenius_ratio_global_c": _r(fpd_frob(c * W1) / fpd_frob(W1)),
        "canonical_ratio_global_c": _r(fpd_canon(c * W1, W2 / c, c * b1) / fpd_canon(W1, W2, b1), 6),
        "raw_D_ratio_per_neuron": _r(M.features_per_dimension(model.projection @ (lam[:, None] * W1).T)
                                     / M.features_per_dimension(model.projection @ W1.T)),
        "canonical_ratio_per_neuron": _r(fpd_canon(lam[:, None] * W1, W2 / lam, lam * b1)
                                         / fpd_canon(W1, W2, b1), 6),
    }
    passed = (drift < 1e-4 and abs(measured["frobenius_ratio_global_c"] - c**2) < 1e-3
              and abs(measured["canonical_ratio_global_c"] - 1) < 1e-5
              and abs(measured["canonical_ratio_per_neuron"] - 1) < 1e-5)
    return passed, measured, (f"W1→cW1, W2→W2/c (c={c:g}) and per-neuron Λ leave the function unchanged; "
                              f"Frobenius measure ×c²={c**2:g}; canonicalised measure ×1")


# ---------------------------------------------------------------- sparse dictionary learning (Sharkey et al.)

SAE_D, SAE_N, SAE_ACTIVE, SAE_STEPS, SAE_LR, SAE_BATCH = 64, 128, 5.0, 1500, 3e-3, 512


@functools.cache
def _planted() -> PlantedFeatures:
    return planted_features(SAE_D, SAE_N, SAE_ACTIVE, decay=0.99, seed=0)


@functools.cache
def _held_out() -> torch.Tensor:
    return _planted().sample(8192, torch.Generator().manual_seed(123))[0]


@functools.cache
def _sae_cell(ratio: float, alpha: float, seed: int = 0, gaussian: bool = False) -> dict:
    truth = _planted()
    if gaussian:
        control = GaussianControl.like(truth.sample(20000, torch.Generator().manual_seed(7))[0])
        sample, x = control.sample, control.sample(8192, torch.Generator().manual_seed(123))
    else:
        sample, x = (lambda b, g: truth.sample(b, g)[0]), _held_out()
    with single_thread():
        sae = train_sae(sample, SAE_D, int(ratio * SAE_N), alpha, SAE_STEPS, batch=SAE_BATCH, lr=SAE_LR,
                        seed=seed).sae
    with torch.no_grad():
        x_hat, codes = sae(x)
        atoms = sae.dictionary()
    health = M.sae_health(x, codes, x_hat)
    return {"mmcs": _r(M.mmcs(truth.directions, atoms)), "mmcs_reverse": _r(M.mmcs(atoms, truth.directions)),
            "recovery": _r(M.recovery_rate(truth.directions, atoms)), "mcc": _r(M.matched_mcc(truth.directions, atoms)),
            "l0": _r(health.l0, 2), "true_l0": _r(truth.expected_active, 2), "dead": _r(health.dead),
            "fvu": _r(health.fvu)}


_SAE_SETUP = f"d={SAE_D}, N={SAE_N}, E[#active]={SAE_ACTIVE:g}, p_i∝0.99^i"


@check("fast", f"Sharkey et al. 2022: SAE recovers planted features ({_SAE_SETUP}, k=2N, α=1)")
def sae_recovers_planted(seeds: int) -> Outcome:
    m = _sae_cell(2.0, 1.0)
    return m["mmcs"] >= 0.97 and m["recovery"] >= 0.95, m, "MMCS ≥ 0.97 and ≥95% of features matched at cos>0.9"


@check("fast", "Sharkey et al. 2022: too small a dictionary (k=N/2) fails")
def sae_small_dictionary_fails(seeds: int) -> Outcome:
    m = _sae_cell(0.5, 1.0)
    return m["recovery"] <= 0.6 and m["mmcs"] < 0.8, m, "recovery ≤ 0.6 and MMCS < 0.8 (at most N/2 can be matched)"


@check("fast", "Sharkey et al. 2022: too strong a penalty (α=10) collapses the code")
def sae_strong_penalty_collapses(seeds: int) -> Outcome:
    m = _sae_cell(2.0, 10.0)
    return m["l0"] < 0.5 and m["fvu"] > 0.95, m, "L0 < 0.5 and FVU > 0.95 (the decoder's MMCS alone can look fine)"


@check("fast", "Sharkey et al. 2022 / SVD thread: PCA cannot recover an overcomplete packing")
def pca_at_chance(seeds: int) -> Outcome:
    truth, x = _planted(), _held_out()
    pca = M.mmcs(truth.directions, pca_directions(x), absolute=True)
    random = torch.randn(SAE_D, SAE_D, generator=torch.Generator().manual_seed(2024))
    chance = M.mmcs(truth.directions, random, absolute=True)
    sae = _sae_cell(2.0, 1.0)["mmcs"]
    measured = {"mmcs_pca": _r(pca), "mmcs_random_basis": _r(chance), "mmcs_sae": sae}
    return abs(pca - chance) < 0.1 and sae - pca > 0.5, measured, \
        "|MMCS(PCA) − MMCS(random basis)| < 0.1 while the SAE is > 0.5 higher"


@check("fast", "Towards Monosemanticity randomised control: dense Gaussian with the same mean and covariance")
def dense_gaussian_control_fails(seeds: int) -> Outcome:
    control, sparse = _sae_cell(2.0, 1.0, gaussian=True), _sae_cell(2.0, 1.0)
    measured = dict(control) | {"sparse_recovery": sparse["recovery"], "sparse_mmcs": sparse["mmcs"]}
    return control["recovery"] <= 0.2 and sparse["mmcs"] - control["mmcs"] >= 0.1, measured, \
        "the same SAE on the Gaussian control recovers ≤20% of features (cos>0.9), MMCS ≥0.1 below the sparse run"


@check("slow", "Sharkey et al. 2022 / Towards Monosemanticity: dictionaries agree across seeds")
def sae_seed_stability(seeds: int) -> Outcome:
    truth = _planted()
    runs = [_sae_cell(2.0, 1.0, seed=s) for s in range(max(2, min(seeds, 3)))]
    recovered = [r["recovery"] for r in runs]
    return min(recovered) >= 0.95, {"recovery_per_seed": recovered, "mmcs_per_seed": [r["mmcs"] for r in runs],
                                    "features": truth.n_features}, "every seed recovers ≥95% of planted features"


SAE_RATIOS, SAE_ALPHAS = (0.5, 1.0, 2.0, 4.0), (0.1, 1.0, 10.0)


@check("all", f"Sharkey et al. 2022: dictionary size × L1 penalty sweep ({_SAE_SETUP}; post Figs. 3-4)")
def sae_dictionary_sweep(seeds: int) -> Outcome:
    grid = {(a, k): _sae_cell(k, a) for a in SAE_ALPHAS for k in SAE_RATIOS}
    mid = [grid[(1.0, k)] for k in SAE_RATIOS]
    true_l0 = mid[0]["true_l0"]
    passed = (mid[0]["mmcs"] < 0.8 and mid[2]["mmcs"] >= 0.97 and mid[2]["mmcs"] > mid[0]["mmcs"] + 0.2
              and all(grid[(10.0, k)]["l0"] < 0.5 and grid[(10.0, k)]["fvu"] > 0.95 for k in SAE_RATIOS if k <= 2)
              and all(grid[(0.1, k)]["l0"] > 2 * true_l0 for k in SAE_RATIOS if k >= 1)
              and grid[(0.1, 2.0)]["mmcs"] < mid[2]["mmcs"])
    table = {f"alpha={a:g}": {f"k={k:g}N": {key: c[key] for key in ("mmcs", "recovery", "l0", "dead", "fvu")}
                              for (aa, k), c in grid.items() if aa == a} for a in SAE_ALPHAS}
    return passed, table, ("α=1: MMCS < 0.8 at k=N/2, ≥ 0.97 at k=2N (and ≥0.2 higher); α=10: collapse (L0 < 0.5, "
                           "FVU > 0.95) for k ≤ 2N (at 4N the L1/k convention halves the per-latent penalty: reported); "
                           "α=0.1: L0 > 2× the true L0 for k ≥ N and MMCS below α=1's at k=2N")


# ---------------------------------------------------------------- learning dynamics (S-curves)

@functools.cache
def s_curve(strengths: tuple[float, ...], eps: float, steps: int = 1600, n: int = 20):
    """Gradient descent of a rank-``len(strengths)`` model ``U Vᵀ`` from ``N(0, ε²)`` toward the
    target ``Σ_k s_k a_k b_kᵀ`` (lr 0.01), recording each mode's strength."""
    target, A, B = low_rank_target(n, list(strengths), seed=0)
    model = FactorisedModel(n, len(strengths), eps, seed=0)
    with single_thread():
        return train_factorised(model, target, A, B, steps=steps, lr=0.01, record_every=2)


def _t_half_times_s(strengths: tuple[float, ...], eps: float, steps: int = 1600) -> list[float]:
    dyn = s_curve(strengths, eps, steps)
    return [M.plateau_time(dyn.times, dyn.strength[:, j] / s) * s for j, s in enumerate(strengths)]


@check("fast", "Saxe et al. 2014 / Jermyn & Shlegeris 2022: plateau length ∝ log(1/ε)/s")
def s_curve_plateaus(seeds: int) -> Outcome:
    strengths = (3.0, 1.0)
    table = {eps: _t_half_times_s(strengths, eps) for eps in (1e-2, 1e-3, 1e-4)}
    per_mode = list(zip(*table.values()))  # t½·s for each mode across ε
    rises = [b - a for mode in per_mode for a, b in zip(mode, mode[1:])]
    offsets = [a - b for a, b in table.values()]  # mode 1 minus mode 2, per ε
    passed = all(abs(r - math.log(10)) <= 0.3 for r in rises) and max(offsets) - min(offsets) <= 0.3
    measured = {"t_half_times_s": {f"{e:g}": [_r(x, 2) for x in v] for e, v in table.items()},
                "rise_per_decade": [_r(x, 2) for x in rises], "mode_offset": [_r(x, 2) for x in offsets]}
    return passed, measured, ("t½·s = ln(1/ε) + c_mode: rises by ln 10 ≈ 2.30 (±0.3) per decade of ε for every mode; "
                             "the offset between modes is independent of ε (±0.3)")


@check("all", "Saxe et al. 2014 / Jermyn & Shlegeris 2022: four modes (s = 3, 2, 1, 0.5), ε = 1e-3 … 1e-5")
def s_curve_four_modes(seeds: int) -> Outcome:
    strengths = (3.0, 2.0, 1.0, 0.5)
    table = {eps: _t_half_times_s(strengths, eps, steps=4000) for eps in (1e-3, 1e-4, 1e-5)}
    per_mode = list(zip(*table.values()))
    rises = [b - a for mode in per_mode for a, b in zip(mode, mode[1:])]
    t_half = {e: [ts / s for ts, s in zip(v, strengths)] for e, v in table.items()}
    ordered = all(all(a < b for a, b in zip(v, v[1:])) for v in t_half.values())
    passed = ordered and all(abs(r - math.log(10)) <= 0.3 for r in rises)
    measured = {"t_half": {f"{e:g}": [_r(x, 2) for x in v] for e, v in t_half.items()},
                "t_half_times_s": {f"{e:g}": [_r(x, 2) for x in v] for e, v in table.items()},
                "rise_per_decade": [_r(x, 2) for x in rises]}
    return passed, measured, ("t½·s rises by ln 10 ≈ 2.30 (±0.3) per decade of ε for each of the four modes; modes "
                             "finish their plateaus in order of strength at every ε")


# ---------------------------------------------------------------- memorisation (Henighan et al.)

@functools.cache
def memorise(T: int, seeds: int, steps: int = 3000, n: int = 1000, m: int = 2, p: float = 0.01) -> dict:
    """Henighan et al.'s setting: ``seeds`` ReLU-output models on one fixed set of ``T`` points
    (full batch, AdamW wd 1e-2, warm-up + cosine); the lowest-loss instance's hidden vectors."""
    g = torch.Generator().manual_seed(T)
    data = tms_batch(T, torch.full((seeds, n), p), g)
    model = TiedSuperposition(n, m, instances=seeds, seed=T)
    with single_thread():
        train_fixed_dataset(model, data, steps=steps, lr=1e-3, weight_decay=1e-2, warmup=steps // 10)
    with torch.no_grad():
        per_instance = (data - model(data)).pow(2).mean(dim=(0, 2))
        best = int(per_instance.argmin())
        H = model.hidden(data)[:, best]
    return {"H": H, "W": model.W[best].detach(), "train_loss": float(per_instance[best])}


def _memorisation(Ts: tuple[int, ...], seeds: int, steps: int, rel_tol: float) -> Outcome:
    m, results = 2, {}
    for T in Ts:
        run = memorise(T, seeds, steps)
        dt = M.datapoint_dimensionality(run["H"])
        results[T] = {"train_loss": _r(run["train_loss"], 5), "mean_D_t": _r(dt.mean(), 4),
                      "sum_D_t": _r(dt.sum()), "expected": _r(m / T, 4),
                      "feature_D_star": _r(M.dimensions_per_feature(run["W"]))}
    passed = all(abs(r["mean_D_t"] - m / T) <= rel_tol * m / T and abs(r["sum_D_t"] - m) <= 0.1
                 for T, r in results.items())
    return passed, {f"T={T}": r for T, r in results.items()}, \
        f"mean data-point dimensionality ≈ m/T (±{rel_tol:.0%}); Σ_t D_t ≈ m (±0.1)"


@check("slow", "Henighan et al. 2023: memorised data points form a polygon (m=2)")
def memorisation_geometry(seeds: int) -> Outcome:
    return _memorisation((5, 10), seeds, 3000, 0.075)


@check("all", "Henighan et al. 2023: memorisation geometry for T = 3 … 30 training points (m=2)")
def memorisation_geometry_sweep(seeds: int) -> Outcome:
    return _memorisation((3, 5, 10, 20, 30), seeds, 4000, 0.15)


# ---------------------------------------------------------------- Engineering Monosemanticity (Jermyn et al.)

WORLD = ProjectedWorld()  # N=32 features, d=16, p=0.03; batch 256, lr 1e-2, 6000 steps
KAPPA = 0.9  # a unit represents feature i when cos(profile, e_i) ≥ κ


def _neurons(W1: torch.Tensor, b1: torch.Tensor) -> dict:
    """Monosemanticity of a ProjectedMLP's neurons from its parameters (profiles ``ReLU(P W₁ᵀ + b₁)``)."""
    prof = torch.relu(WORLD.projection() @ W1.T + b1).T
    rep = M.represented_features(prof, KAPPA).any(1)
    live = prof.sum(1) > 0
    return {"monosemantic_fraction": _r(M.monosemantic_fraction(prof, KAPPA)),
            "feature_coverage": _r(M.feature_coverage(prof, KAPPA)),
            "strict_feature_coverage": _r(M.feature_coverage(prof, 0.99)),
            "live": int(live.sum()), "mean_bias": _r(b1.mean()),
            "mono_bias": _r(b1[rep].mean()) if rep.any() else None,
            "poly_bias": _r(b1[live & ~rep].mean()) if (live & ~rep).any() else None}


def _em_model(k: int, seed: int, bias_init: float = 0.0) -> dict:
    model, run = trained_projected(WORLD, k, seed, bias_init)
    baseline = WORLD.n_features * WORLD.probability / 3  # E‖x‖²: the loss of predicting 0
    out = _neurons(model.W1.detach(), model.b1.detach())
    return {"k": k, "seed": seed, "bias_init": bias_init, "relative_loss": _r(run.snapshots[-1].loss / baseline, 4),
            **out, "trajectory": [{"step": s.step, "relative_loss": _r(s.loss / baseline, 4),
                                   **{key: v for key, v in _neurons(s.W1, s.b1).items()
                                      if key in ("monosemantic_fraction", "feature_coverage", "mean_bias")}}
                                  for s in run.snapshots]}


def _engineering_monosemanticity(widths: tuple[int, ...], bias_seeds: tuple[int, ...]) -> Outcome:
    n = WORLD.n_features
    by_width = [_em_model(k, 2) for k in widths]
    narrow, wide = by_width[0], by_width[-1]
    init = {b: [_em_model(4 * n, s, b) for s in bias_seeds] for b in (0.0, -0.2)}

    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    gain = mean(init[-0.2], "monosemantic_fraction") - mean(init[0.0], "monosemantic_fraction")
    loss_ratio = mean(init[-0.2], "relative_loss") / mean(init[0.0], "relative_loss")
    coverage = [r["feature_coverage"] for r in by_width]
    gates = {
        "more_neurons_more_monosemantic": wide["feature_coverage"] >= 0.85
        and wide["feature_coverage"] - narrow["feature_coverage"] >= 0.3
        and all(b >= a - 0.1 for a, b in zip(coverage, coverage[1:])),
        "negative_bias_init_more_monosemantic_at_equal_loss": gain >= 0.03 and abs(loss_ratio - 1) <= 0.1,
        "monosemantic_neurons_have_moderate_negative_biases": wide["mono_bias"] is not None
        and wide["poly_bias"] is not None and -1.0 <= wide["mono_bias"] <= -0.1
        and wide["mono_bias"] <= wide["poly_bias"] - 0.05,
    }
    measured = {"setup": f"N={n}, d={WORLD.input_dim}, p={WORLD.probability}, {WORLD.steps} steps, batch "
                         f"{WORLD.batch}, lr {WORLD.lr}; κ={KAPPA}",
                "by_width": [{k: v for k, v in r.items() if k != "trajectory"} for r in by_width],
                "wide_trajectory": wide["trajectory"],
                "bias_init_k4N": {f"{b:g}": [{k: r[k] for k in ("seed", "relative_loss", "monosemantic_fraction",
                                                                 "feature_coverage", "mean_bias")} for r in rows]
                                  for b, rows in init.items()},
                "bias_init_gain": _r(gain), "bias_init_loss_ratio": _r(loss_ratio),
                "failed_gates": [g for g, ok in gates.items() if not ok]}
    return all(gates.values()), measured, (
        "feature coverage by monosemantic neurons ≥0.85 at k=8N, ≥0.3 above k=N, non-decreasing (±0.1) in k; "
        "bias init −0.2 vs 0 at k=4N: monosemantic fraction +≥0.03 (mean over seeds) at loss within ±10%; "
        "monosemantic neurons' mean bias in [−1, −0.1] and ≥0.05 below the polysemantic ones'")


@check("slow", "Jermyn, Schiefer, Hubinger 2022, Engineering Monosemanticity (feature decoder, k = N and 8N)")
def engineering_monosemanticity(seeds: int) -> Outcome:
    n = WORLD.n_features
    return _engineering_monosemanticity((n, 8 * n), (2, 5))


@check("all", "Jermyn, Schiefer, Hubinger 2022, Engineering Monosemanticity: width sweep k = N/2 … 8N, 4 seeds")
def engineering_monosemanticity_sweep(seeds: int) -> Outcome:
    n = WORLD.n_features
    return _engineering_monosemanticity((n // 2, n, 2 * n, 4 * n, 8 * n), (2, 5, 7, 9))


# ---------------------------------------------------------------- cross-model ground truth

XM_WIDTHS = (6 * WORLD.n_features, 8 * WORLD.n_features)  # A: k=6N, B: k=8N


@functools.cache
def _cross_model(seed_a: int, seed_b: int, control: str = "trained", latents: bool = False) -> dict:
    """Compare A (k=6N) with B (k=8N, trained or at random init) on the same true features."""
    model_a = trained_projected(WORLD, XM_WIDTHS[0], seed_a)[0]
    model_b = (trained_projected(WORLD, XM_WIDTHS[1], seed_b)[0] if control == "trained"
               else random_projected(WORLD, XM_WIDTHS[1], seed_b))
    units_a, units_b = model_a.hidden, model_b.hidden
    if latents:
        units_a = sae_units(model_a, WORLD, seed=seed_a)
        units_b = sae_units(model_b, WORLD, seed=seed_b)
    with single_thread():
        return compare_models(units_a, units_b, WORLD, threshold=0.8, kappa=KAPPA, seed=seed_a)


def _cross_model_gates(pair: dict, random: dict | None, latents: bool = False) -> dict[str, bool]:
    rt, um, sim = pair["readout_transfer"], pair["unit_matching"], pair["similarity"]
    units, feats = um["at_threshold"]["units"], um["at_threshold"]["features"]
    floor = (0.75, 0.7) if not latents else (0.85, 0.85)
    gates = {
        "readout_transfer_tracks_features": rt["auroc_transfer"] >= 0.95 and rt["recovery"] >= 0.95
        and rt["precision"] >= 0.95 and rt["recall"] >= 0.95,
        "readout_shuffled_pairing_at_chance": 0.4 <= rt["auroc_shuffled_pairing"] <= 0.6,
        "unit_matching_precision_recall": (units["precision"] or 0) >= floor[0] and (units["recall"] or 0) >= floor[1]
        and (feats["precision"] or 0) >= 0.85 and (feats["recall"] or 0) >= 0.85,
        "unit_matching_shuffled_pairing_at_chance": um["shuffled_pairing"]["claimed_at_threshold"] == 0
        and (um["shuffled_pairing"]["feature_precision"] or 0) <= 0.1,
        "similarity_above_shuffled_null": all(v["value"] > v["null_band"][1] for v in sim.values()),
    }
    if random is not None:
        ru = random["unit_matching"]
        feats_r = ru["at_threshold"]["features"]
        recovered = round((feats_r["recall"] or 0) * feats_r["achievable"])  # features a correct claim links
        gates["random_init_B_unit_matching_fails"] = (
            recovered <= 0.1 * max(1, ru["features_represented"][0])
            and (ru["at_shuffled_threshold"]["units"]["precision"] or 0) <= 0.1)
        gates["random_init_B_cka_below_trained"] = (
            random["similarity"]["cka_debiased"]["value"] <= sim["cka_debiased"]["value"] - 0.1)
    return gates


def _xm_summary(res: dict) -> dict:
    """The headline numbers of one comparison (the full record is long)."""
    rt, um, sim = res["readout_transfer"], res["unit_matching"], res["similarity"]
    return {"readout_transfer": {k: rt[k] for k in ("auroc_probe_A", "auroc_transfer", "auroc_native_B", "recovery",
                                                    "corr_with_feature", "auroc_shuffled_pairing", "precision",
                                                    "recall")},
            "unit_matching": {k: um[k] for k in ("units", "live", "monosemantic", "features_represented")}
            | {name: {"tau": um[name]["tau"],
                      **{f"{lvl}_{key}": um[name][lvl][key] for lvl in ("units", "features")
                         for key in ("claimed", "correct", "achievable", "precision", "recall")}}
               for name in ("at_threshold", "at_shuffled_threshold")}
            | {"shuffled_pairing": um["shuffled_pairing"]},
            "similarity": {k: {"value": _r(v["value"]), "null_band": [_r(x) for x in v["null_band"]], "z": v["z"],
                               "p": _r(v["p"])} for k, v in sim.items()}}


_XM_EXPECTED = ("trained B: transfer AUROC ≥0.95, recovery ≥0.95, readout precision/recall ≥0.95, shuffled pairing "
                "AUROC in [0.4, 0.6]; unit matching at corr>0.8: unit precision ≥0.75 / recall ≥0.7, feature precision "
                "/ recall ≥0.85, nothing claimed under shuffled pairing; CKA, mutual k-NN, ridge R² above their "
                "shuffled-pairing null bands. Random-init B (must fail): correct feature claims cover ≤10% of A's "
                "features and unit precision ≤0.1 at the shuffled-null threshold; its CKA ≥0.1 below the trained B's. "
                "Not gated, reported: readout transfer to the random-init B (random ReLU features keep the information)")


@check("fast", "Cross-model ground truth: translation and matching between two toy models on the same features")
def cross_model_correspondence(seeds: int) -> Outcome:
    trained, random = _cross_model(1, 2), _cross_model(1, 3, control="random")
    gates = _cross_model_gates(trained, random)
    measured = {"setup": f"A: k={XM_WIDTHS[0]} seed 1, B: k={XM_WIDTHS[1]} seed 2 (random-init control: seed 3); "
                         f"{WORLD.n_features} features, d={WORLD.input_dim}; κ={KAPPA}",
                "trained_B": _xm_summary(trained), "random_init_B": _xm_summary(random),
                "failed_gates": [g for g, ok in gates.items() if not ok]}
    return all(gates.values()), measured, _XM_EXPECTED


@check("all", "Cross-model ground truth over 3 seed pairs, plus SAE latents instead of neurons")
def cross_model_correspondence_seeds(seeds: int) -> Outcome:
    pairs = [(1, 2), (3, 4), (5, 6)]
    records, failed = {}, []
    for a, b in pairs:
        trained, random = _cross_model(a, b), _cross_model(a, b + 100, control="random")
        gates = _cross_model_gates(trained, random)
        records[f"A{a}_B{b}"] = {"trained_B": _xm_summary(trained), "random_init_B": _xm_summary(random)}
        failed += [f"A{a}_B{b}:{g}" for g, ok in gates.items() if not ok]
    latent = _cross_model(1, 2, latents=True)
    failed += [f"sae_latents:{g}" for g, ok in _cross_model_gates(latent, None, latents=True).items() if not ok]
    random_latent = _cross_model(1, 103, control="random", latents=True)
    records["sae_latents_A1_B2"] = _xm_summary(latent)
    records["sae_latents_random_init_B"] = _xm_summary(random_latent)  # reported, not gated: see the report
    records["failed_gates"] = failed
    return not failed, records, (_XM_EXPECTED + "; for every seed pair, and for SAE latents (2N, α=0.03) of the trained "
                                 "pair (unit precision/recall ≥0.85). SAE latents of the random-init B: reported")


# ---------------------------------------------------------------- running

def select(names: list[str] | None = None, tier: str = "fast") -> list[Check]:
    """Checks by name, or every check up to ``tier`` (fast ⊂ slow ⊂ all)."""
    if names:
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise KeyError(", ".join(unknown))
        return [CHECKS[n] for n in names]
    keep = TIERS[: TIERS.index(tier) + 1]
    return [c for c in CHECKS.values() if c.tier in keep]


def run_check(c: Check, seeds: int = DEFAULT_SEEDS) -> CheckResult:
    t0 = time.perf_counter()
    passed, measured, expected = c.fn(seeds)
    return CheckResult(c.name, bool(passed), measured, expected, round(time.perf_counter() - t0, 2), c.tier, c.paper)


def run_checks(names: list[str] | None = None, tier: str = "fast", seeds: int = DEFAULT_SEEDS) -> list[CheckResult]:
    return [run_check(c, seeds) for c in select(names, tier)]

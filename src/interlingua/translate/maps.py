"""Global maps between two models' activation spaces, fitted on unlabeled aligned words only.

A global map is concept-independent: fitted once on the words both models read, it carries
*any* concept of A into B. Two kinds:

* ``ridge``: affine least squares B → A (and A → B for vectors), λ chosen on held-out
  documents by R² of the reconstruction — no concept label is ever seen;
* ``procrustes``: both spaces whitened on their top-k principal components, then the
  orthogonal rotation that best aligns them (Schönemann's solution ``R = U Vᵀ`` of
  ``Z_bᵀ Z_a = U S Vᵀ``). Invertible on the k-dim subspace, so it carries readouts and vectors.

Convention: rows are activations; a map B → A is ``x̂_a = (x_b − μ_b) M + μ_a`` with
``M: [d_b, d_a]``. A's readout ``s = x_a·w + c`` is pulled back to B as ``(M w, c + μ_a·w −
μ_b·M w)``; a displacement ``v_a`` (a steering vector) is pushed to B as ``v_a M⁻`` with the
map's A → B matrix ``M⁻: [d_a, d_b]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.similarity import r2_score, ridge_fit, standardise

MAP_KINDS = ("ridge", "procrustes")


@dataclass
class GlobalMap:
    """``x̂_a = (x_b − mean_b) @ matrix + mean_a``; ``inverse`` maps A displacements into B."""

    kind: str
    matrix: torch.Tensor  # [d_b, d_a], float64
    mean_a: torch.Tensor
    mean_b: torch.Tensor
    inverse: torch.Tensor  # [d_a, d_b], float64
    info: dict

    def to_a(self, xb: torch.Tensor) -> torch.Tensor:
        return (xb.double() - self.mean_b) @ self.matrix + self.mean_a

    def pull_readout(self, readout: Readout) -> Readout:
        """The B readout that equals A's readout applied to the mapped activations."""
        w = readout.weight.double()
        wb = self.matrix @ w
        return Readout(weight=wb.float(), bias=float(readout.bias + self.mean_a @ w - self.mean_b @ wb))

    def push_vector(self, v: torch.Tensor) -> torch.Tensor:
        """A displacement in A's space (e.g. a steering vector) carried into B's."""
        return (v.double() @ self.inverse).float()


def _check(xa: torch.Tensor, xb: torch.Tensor) -> None:
    if xa.shape[0] != xb.shape[0]:
        raise InterlinguaError(f"a global map needs paired rows: A has {xa.shape[0]}, B has {xb.shape[0]}.")
    if xa.shape[0] < 10:
        raise InterlinguaError(f"only {xa.shape[0]} aligned words; a global map needs many more (give more text).")


def _held_out(n: int, groups: torch.Tensor | None, every: int = 5) -> torch.Tensor:
    g = torch.arange(n) if groups is None else groups
    return (g % every) == 0


def _affine(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ridge y ≈ (x − μ_x) M + μ_y on standardised x, returned in raw coordinates."""
    z, mx, sx = standardise(x)
    coef, _ = ridge_fit(z, y, lam)
    return coef / sx[:, None], mx, y.double().mean(0)


def fit_ridge_map(xa: torch.Tensor, xb: torch.Tensor, *, lams: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
                  groups: torch.Tensor | None = None) -> GlobalMap:
    """Affine ridge maps B → A and A → B; λ by held-out R² (every 5th group held out), then refit on all."""
    _check(xa, xb)
    val = _held_out(xa.shape[0], groups)
    scores = {}
    for lam in lams:
        m, mb, ma = _affine(xb[~val], xa[~val], lam)
        scores[lam] = r2_score(xa[val], (xb[val].double() - mb) @ m + ma)
    lam = max(scores, key=scores.get)
    m, mb, ma = _affine(xb, xa, lam)
    inv, _, _ = _affine(xa, xb, lam)
    return GlobalMap("ridge", m, ma, mb, inv, {"lam": lam, "r2_val_b_to_a": round(scores[lam], 4)})


def _whiteners(x: torch.Tensor, ks: Sequence[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per k: (mean, P [d, k], P⁺ [k, d]) with z = (x − mean) P of identity covariance and
    x ≈ z P⁺ + mean. One eigendecomposition of the d × d covariance serves every k (the same
    principal axes as an SVD of the n × d data, at a fraction of the cost)."""
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    e, v = torch.linalg.eigh(xc.T @ xc / (x.shape[0] - 1))
    order = e.argsort(descending=True)
    sd, vt = e[order].clamp_min(1e-300).sqrt(), v[:, order].T
    return {k: (mean, vt[:k].T / sd[:k], sd[:k, None] * vt[:k]) for k in ks}


def fit_procrustes_map(xa: torch.Tensor, xb: torch.Tensor, *, k: int | None = None,
                       groups: torch.Tensor | None = None) -> GlobalMap:
    """Orthogonal Procrustes between the top-``k`` whitened principal subspaces of A and B.

    ``k`` defaults to whichever of (32, 64, 128, 256) that fits both widths gives the best
    held-out R² of the B → A reconstruction; the chosen map is refitted on all words.
    """
    _check(xa, xb)
    limit = min(xa.shape[1], xb.shape[1], xa.shape[0] - 1)
    ks = [k] if k is not None else [c for c in (32, 64, 128, 256) if c <= limit] or [limit]
    val = _held_out(xa.shape[0], groups)

    def fits(rows: torch.Tensor, kks: Sequence[int]) -> dict[int, GlobalMap]:
        wa, wb = _whiteners(xa[rows], kks), _whiteners(xb[rows], kks)
        out = {}
        for kk in kks:
            (ma, pa, pa_inv), (mb, pb, pb_inv) = wa[kk], wb[kk]
            u, _, vt = torch.linalg.svd(((xb[rows].double() - mb) @ pb).T @ ((xa[rows].double() - ma) @ pa))
            r = u @ vt
            out[kk] = GlobalMap("procrustes", pb @ r @ pa_inv, ma, mb, pa @ r.T @ pb_inv, {"k": kk})
        return out

    scores = {kk: r2_score(xa[val], m.to_a(xb[val])) for kk, m in fits(~val, ks).items()}
    best = max(scores, key=scores.get)
    out = fits(torch.ones(xa.shape[0], dtype=torch.bool), [best])[best]
    out.info["r2_val_b_to_a"] = round(scores[best], 4)
    return out


def fit_map(kind: str, xa: torch.Tensor, xb: torch.Tensor, *, groups: torch.Tensor | None = None) -> GlobalMap:
    if kind == "ridge":
        return fit_ridge_map(xa, xb, groups=groups)
    if kind == "procrustes":
        return fit_procrustes_map(xa, xb, groups=groups)
    raise InterlinguaError(f"unknown global map '{kind}'; choose from {', '.join(MAP_KINDS)}.")

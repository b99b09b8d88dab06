"""Discovery methods: from labelled activations to a linear readout (pure functions).

Each method returns a :class:`Readout` ``score(x) = x · weight + bias`` in the model's raw
activation space, so that every readout is used, saved and compared the same way.

* :func:`diff_of_means` — mean of positives minus mean of negatives; bias at the midpoint.
* :func:`logistic_probe` — L2-regularised logistic regression on standardised features
  (standardising matters on models with outlier dimensions, such as Gemma-3).
* :func:`pca_of_differences` — first principal component of paired differences
  ``x_pos − x_neg``; whether the differences are centred first is an explicit argument
  (centred, it finds the axis along which pairs *vary*; uncentred, the one they *share*).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

METHODS = ("diff_of_means", "logistic", "pca")


@dataclass
class Readout:
    weight: torch.Tensor  # [d]
    bias: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.weight + self.bias

    @property
    def direction(self) -> torch.Tensor:
        """The readout's unit direction in activation space."""
        return self.weight / self.weight.norm().clamp_min(1e-12)


def _split(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pos = y > 0.5
    if int(pos.sum()) == 0 or int((~pos).sum()) == 0:
        raise ValueError("both classes are needed to fit a readout")
    return x[pos].float(), x[~pos].float()


def diff_of_means(x: torch.Tensor, y: torch.Tensor) -> Readout:
    pos, neg = _split(x, y)
    mu_p, mu_n = pos.mean(0), neg.mean(0)
    w = mu_p - mu_n
    return Readout(weight=w, bias=float(-(mu_p + mu_n) @ w / 2))


def standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (std floored so constant dimensions do not explode)."""
    x = x.float()
    mean, std = x.mean(0), x.std(0)
    return mean, std.clamp_min(1e-6 * float(std.max().clamp_min(1e-12)))


def logistic_probe(x: torch.Tensor, y: torch.Tensor, *, l2: float = 1e-2, max_iter: int = 200) -> Readout:
    """L2-regularised logistic regression on standardised features, mapped back to raw space.

    ``y`` may be soft labels in [0, 1]. The penalty is ``l2 · |w|²/2`` on the standardised
    weights, averaged loss, so ``l2`` means the same for any number of examples.
    """
    _split(x, y)
    weight, bias = logistic_probes(x, y[:, None], l2=l2, max_iter=max_iter)
    return Readout(weight=weight[:, 0].contiguous(), bias=float(bias[0]))


def logistic_probes(x: torch.Tensor, y: torch.Tensor, *, l2: float = 1e-2, max_iter: int = 200
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`logistic_probe` for every column of ``y`` [n, k] at once: ``(weight [d, k], bias [k])``.

    The k problems are independent and their losses are summed, so one L-BFGS run over all
    weights reaches each problem's own optimum (used for the hundreds of label-shuffled probes
    of a null distribution).
    """
    x = x.float()
    mean, std = standardiser(x)
    z = (x - mean) / std
    t = y.float()
    k = t.shape[1]
    w = torch.zeros(z.shape[1], k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, t, reduction="sum") / len(z) \
            + l2 * (w * w).sum() / 2
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w_raw = w.detach() / std[:, None]
    return w_raw, b.detach() - mean @ w_raw


def pca_of_differences(pos: torch.Tensor, neg: torch.Tensor, *, center: bool) -> Readout:
    """First principal component of the paired differences ``pos[i] − neg[i]``.

    The sign is chosen so that positives score higher on average; the bias puts the
    midpoint of the class means at zero.
    """
    if pos.shape != neg.shape:
        raise ValueError("pca_of_differences needs one positive per negative (pairs)")
    diffs = pos.float() - neg.float()
    if center:
        diffs = diffs - diffs.mean(0)
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    w = vh[0]
    mean_diff = (pos.float() - neg.float()).mean(0)
    if float(mean_diff @ w) < 0:
        w = -w
    mid = (pos.float().mean(0) + neg.float().mean(0)) / 2
    return Readout(weight=w, bias=float(-mid @ w))


def random_readout(d: int, generator: torch.Generator) -> Readout:
    """A random unit direction: the null every direction is compared with."""
    w = torch.randn(d, generator=generator)
    return Readout(weight=w / w.norm(), bias=0.0)

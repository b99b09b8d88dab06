"""How good is an SAE: reconstruction, sparsity, latent health, downstream loss, and what its latents read.

* :func:`reconstruction_metrics` — on held-out activations: FVU, L0, dead / dense fractions,
  shrinkage, the latent density histogram.
* :func:`downstream_loss` — the model's next-token loss with the SAE spliced in at its hook (every
  trained position replaced by its reconstruction), against the clean model and zero-ablation:
  cross-entropy and KL recovered.
* :func:`top_snippets` — each latent's top-activating tokens in context.
* :func:`evaluate` — all of the above for one SAE on its model, as a typed :class:`SAEEvalSide`;
  ``interlingua sae eval`` saves an :class:`SAEEval` (one side, or the SAE and its random-init
  baseline) and :mod:`interlingua.report.sae` renders it (text, and the HTML page with latent cards).

The measuring functions are plain: tensors in, a JSON-ready dict out; the records read those dicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from interlingua.activations import Activations
from interlingua.errors import InterlinguaError
from interlingua.models.hooks import hooked
from interlingua.models.loaded import LoadedModel
from interlingua.results import Record, record
from interlingua.sae.model import SparseAutoencoder

DENSE_DENSITY = 0.1  # a latent firing on more than 10% of tokens counts as dense
HISTOGRAM_EDGES = (-6, -5, -4, -3, -2, -1)  # log10 firing frequency bin edges


@torch.no_grad()
def encode_batched(sae: SparseAutoencoder, x: Tensor, batch: int = 4096):
    """Yield ``(rows, code, x̂)`` over ``x`` in batches."""
    for s in range(0, len(x), batch):
        xb = x[s:s + batch].to(sae.W_dec.dtype)
        code = sae.encode(xb)
        yield xb, code, sae.decode(code)


@torch.no_grad()
def reconstruction_metrics(sae: SparseAutoencoder, x: Tensor, batch: int = 4096) -> dict:
    """Metrics of ``sae`` on activations ``x`` [n, d_in] (held-out data; positions already filtered).

    ``fvu = Σ‖x − x̂‖² / Σ‖x − x̄‖²``; ``l0`` = mean active latents per row; ``dead_fraction`` =
    share of latents that never fire on ``x``; ``dense_fraction`` = share firing on more than 10% of
    rows; ``l2_ratio = E‖x̂‖ / E‖x‖`` and ``relative_reconstruction_bias = E[x̂·x] / E‖x̂‖²`` (Wright &
    Sharkey: above 1 means the reconstruction is shrunk); ``cosine`` = mean cos(x, x̂);
    ``density_histogram`` counts latents by log10 firing frequency.
    """
    if len(x) == 0:
        raise InterlinguaError("no activations to evaluate the SAE on.")
    if x.shape[1] != sae.d_in:
        raise InterlinguaError(f"the activations have width {x.shape[1]} but the SAE expects d_in={sae.d_in}; "
                               "is this the SAE's model and hook point?")
    mean = x.double().mean(0)
    sq_err = total = dot = hat_sq = norm_x = norm_hat = cos = 0.0
    l0 = 0.0
    fires = torch.zeros(sae.d_sae, dtype=torch.float64)
    for xb, code, x_hat in encode_batched(sae, x, batch):
        xd, hd = xb.double(), x_hat.double()
        sq_err += float((xd - hd).pow(2).sum())
        total += float((xd - mean).pow(2).sum())
        dot += float((xd * hd).sum())
        hat_sq += float(hd.pow(2).sum())
        norm_x += float(xd.norm(dim=1).sum())
        norm_hat += float(hd.norm(dim=1).sum())
        cos += float(F.cosine_similarity(xd, hd, dim=1).sum())
        active = code.values > 0
        l0 += float(active.sum())
        fires.index_add_(0, code.indices[active], torch.ones(int(active.sum()), dtype=torch.float64))
    n = len(x)
    density = fires / n
    return {
        "n": n,
        "fvu": sq_err / max(total, 1e-30),
        "explained_variance": 1 - sq_err / max(total, 1e-30),
        "l0": l0 / n,
        "dead_fraction": float((fires == 0).double().mean()),
        "dense_fraction": float((density > DENSE_DENSITY).double().mean()),
        "l2_ratio": norm_hat / max(norm_x, 1e-30),
        "relative_reconstruction_bias": dot / max(hat_sq, 1e-30),
        "cosine": cos / n,
        "density_histogram": density_histogram(density),
    }


def density_histogram(density: Tensor) -> dict:
    """Latents counted by firing frequency: dead, then log10 bins ``(−∞, 1e−6], (1e−6, 1e−5], …, (0.1, 1]``."""
    alive = density > 0
    log = torch.where(alive, density.clamp_min(1e-300).log10(), torch.zeros_like(density))
    edges = [-math.inf, *HISTOGRAM_EDGES, 0.0]
    labels = ["dead"] + [f"<=1e{HISTOGRAM_EDGES[0]}"] + [f"1e{a}..1e{b}" for a, b in zip(HISTOGRAM_EDGES,
                                                                                       HISTOGRAM_EDGES[1:])] + [
        f"1e{HISTOGRAM_EDGES[-1]}..1"]
    counts = [int((~alive).sum())] + [int((alive & (log > lo) & (log <= hi)).sum()) for lo, hi in zip(edges, edges[1:])]
    return {"bins": labels, "counts": counts}


# --------------------------------------------------------------------------------------------
# Downstream loss with the SAE spliced in


def _batches(model: LoadedModel, texts: Sequence[str], max_tokens: int, batch_tokens: int):
    enc = model.tokenizer(list(texts), add_special_tokens=True)
    ids = [x[:max_tokens] for x in enc["input_ids"] if len(x) >= 2]
    if not ids:
        raise InterlinguaError("no text long enough (two tokens or more) to measure the next-token loss on.")
    ids.sort(key=len, reverse=True)
    batch: list[list[int]] = []
    for x in ids:
        if batch and (len(batch) + 1) * len(batch[0]) > batch_tokens:
            yield batch
            batch = []
        batch.append(x)
    if batch:
        yield batch


@torch.no_grad()
def downstream_loss(model: LoadedModel, sae: SparseAutoencoder, texts: Sequence[str], *, hook: str | None = None,
                    skip_first: int | None = None, max_tokens: int = 256, batch_tokens: int | None = None) -> dict:
    """Next-token cross-entropy and KL to the clean model with the SAE spliced in at ``hook``.

    At every position from ``skip_first`` on (default: the SAE's training exclusion), the activation
    is replaced by the SAE's reconstruction (``sae``) or by zeros (zero-ablation). Reported:
    ``ce_clean``, ``ce_sae``, ``ce_zero`` (nats per predicted token), ``ce_recovered = (ce_zero −
    ce_sae) / (ce_zero − ce_clean)``, ``kl_sae`` and ``kl_zero`` (mean KL(clean ‖ patched) per token)
    and ``kl_recovered = 1 − kl_sae / kl_zero``.
    """
    point = model.hook(hook or sae.cfg.hook_name)
    if batch_tokens is None:  # three [tokens, vocab] float tensors live at once: keep each near 256 MiB
        batch_tokens = max(32, min(2048, 2 ** 26 // model.vocab_size))
    if skip_first is None:
        skip_first = int(sae.cfg.provenance.get("source", {}).get("exclusion", {}).get("skip_first", 1))
    sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "kl_sae": 0.0, "kl_zero": 0.0}
    count = 0
    pad = model.tokenizer.pad_token_id
    for batch in _batches(model, texts, max_tokens, batch_tokens):
        width = len(batch[0])
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, x in enumerate(batch):
            ids[r, :len(x)] = torch.tensor(x)
            mask[r, :len(x)] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        target, valid = ids[:, 1:], mask[:, 1:].bool()

        def run(replace=None):
            fns = {}
            if replace is not None:
                def fn(h: Tensor) -> Tensor:
                    out = h.clone()
                    out[:, skip_first:] = replace(h[:, skip_first:])
                    return out
                fns = {point: fn}
            with hooked(model.model, fns):
                logits = model.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            return F.log_softmax(logits[:, :-1].float(), dim=-1)

        clean = run()
        p_clean = clean.exp()
        sums["clean"] += float(-clean.gather(2, target[..., None]).squeeze(2)[valid].sum())
        for name, replace in (("sae", lambda h: sae(h).to(h.dtype)), ("zero", torch.zeros_like)):
            lp = run(replace)
            sums[name] += float(-lp.gather(2, target[..., None]).squeeze(2)[valid].sum())
            sums["kl_" + name] += float((p_clean * (clean - lp)).sum(-1)[valid].sum())
            del lp
        count += int(valid.sum())
    ce = {k: sums[k] / count for k in ("clean", "sae", "zero")}
    kl_sae, kl_zero = sums["kl_sae"] / count, sums["kl_zero"] / count
    gap = ce["zero"] - ce["clean"]
    return {
        "tokens": count,
        "hook": point.name,
        "spliced_from_position": skip_first,
        "ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
        # Undefined when zero-ablation does not raise the loss (e.g. a random-init model, whose clean
        # predictions are worse than uniform): then only KL recovered means something.
        "ce_recovered": (ce["zero"] - ce["sae"]) / gap if gap > 1e-6 else None,
        "kl_sae": kl_sae, "kl_zero": kl_zero,
        "kl_recovered": 1 - kl_sae / kl_zero if kl_zero > 1e-12 else None,
    }


# --------------------------------------------------------------------------------------------
# What latents read


@torch.no_grad()
def top_snippets(sae: SparseAutoencoder, acts: Activations, hook: str | None = None, *,
                 latents: Sequence[int] | None = None, n_latents: int = 20, per_latent: int = 8,
                 width: int = 40) -> list[dict]:
    """For each latent, the tokens where it fires most, with the text around them.

    ``latents`` defaults to the ``n_latents`` most frequently firing ones. Each snippet holds the
    text ``left``, the ``token`` and ``right`` context, the activation and its document/position.
    """
    hook = hook or sae.cfg.hook_name
    x = acts[hook]
    values = []
    for _, code, _ in encode_batched(sae, x):
        values.append(code)
    idx = torch.cat([c.indices for c in values])
    val = torch.cat([c.values for c in values]).float()
    rows = torch.arange(len(x))[:, None].expand_as(idx)
    active = val > 0
    idx, val, rows = idx[active], val[active], rows[active]
    if latents is None:
        counts = torch.bincount(idx, minlength=sae.d_sae)
        latents = [int(i) for i in torch.argsort(counts, descending=True, stable=True)[:n_latents] if counts[i] > 0]
    out = []
    for lat in latents:
        sel = idx == lat
        v, r = val[sel], rows[sel]
        order = torch.argsort(v, descending=True, stable=True)[:per_latent]
        snippets = []
        for o in order.tolist():
            row = int(r[o])
            snippets.append({**_context(acts, row, width), "activation": round(float(v[o]), 4),
                             "doc": int(acts.doc[row]), "pos": int(acts.pos[row])})
        out.append({"latent": int(lat), "fires": int(sel.sum()), "density": float(sel.sum()) / len(x),
                    "snippets": snippets})
    return out


def _context(acts: Activations, row: int, width: int) -> dict:
    if acts.texts is None:
        return {"left": "", "token": acts.tokens[row], "right": ""}
    text = acts.texts[int(acts.doc[row])]
    s, e = int(acts.char_start[row]), int(acts.char_end[row])
    return {"left": text[max(0, s - width):s], "token": text[s:e], "right": text[e:e + width]}


# --------------------------------------------------------------------------------------------
# Typed results (the JSON keys of ``sae eval --json`` and ``sae_eval.json``)


@record
class DensityHistogram(Record):
    """Latents counted by log10 firing frequency (:func:`density_histogram`): ``bins`` labels, ``counts``."""

    bins: list[str]
    counts: list[int]


@record
class Reconstruction(Record):
    """:func:`reconstruction_metrics` of one SAE on held-out activations."""

    n: int = 0
    fvu: float | None = None
    explained_variance: float | None = None
    l0: float | None = None
    dead_fraction: float | None = None
    dense_fraction: float | None = None
    l2_ratio: float | None = None
    relative_reconstruction_bias: float | None = None
    cosine: float | None = None
    density_histogram: DensityHistogram | None = None


@record
class Downstream(Record):
    """:func:`downstream_loss`: next-token CE and KL with the SAE (and zeros) spliced in."""

    tokens: int = 0
    hook: str = ""
    spliced_from_position: int = 0
    ce_clean: float | None = None
    ce_sae: float | None = None
    ce_zero: float | None = None
    ce_recovered: float | None = None
    kl_sae: float | None = None
    kl_zero: float | None = None
    kl_recovered: float | None = None


@record
class Snippet(Record):
    """One top activation of a latent: the firing ``token`` with its ``left`` / ``right`` context."""

    left: str = ""
    token: str = ""
    right: str = ""
    activation: float = 0.0
    doc: int = 0
    pos: int = 0


@record
class LatentSnippets(Record):
    """A latent's firing count and density, and its top snippets (:func:`top_snippets`)."""

    latent: int = 0
    fires: int = 0
    density: float = 0.0
    snippets: list[Snippet] = dataclasses.field(default_factory=list)


@record
class SAEEvalSide(Record):
    """Everything measured for one SAE on its model (:func:`evaluate`)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"downstream", "latents"})

    model: str = ""
    hook: str = ""
    reconstruction: Reconstruction | None = None
    downstream: Downstream | None = None
    latents: list[LatentSnippets] | None = None


@record
class SAEEval(Record):
    """What ``interlingua sae eval`` reports: the SAE (``main``) and optionally its random-init ``baseline``."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"baseline", "baseline_sae", "html"})

    sae: str = ""
    texts: int = 0
    main: SAEEvalSide | None = None
    baseline: SAEEvalSide | None = None
    baseline_sae: str | None = None
    html: str | None = None


def evaluate(sae: SparseAutoencoder, model: LoadedModel, texts: Sequence[str], *, max_tokens: int = 256,
             downstream: bool = True, snippets: int = 0, progress: bool = False) -> SAEEvalSide:
    """Evaluate ``sae`` on ``model``'s activations of ``texts`` at the SAE's hook, leaving out the
    positions its training left out: reconstruction, optionally the downstream loss, and the top
    snippets of the ``snippets`` most frequent latents."""
    from interlingua.activations import extract
    from interlingua.sae.data import Exclusion

    hook = sae.cfg.hook_name
    if not hook:
        raise InterlinguaError("the SAE does not record its hook point; pass --hook.")
    exc = sae.cfg.provenance.get("source", {}).get("exclusion", {})
    exclusion = Exclusion(skip_first=int(exc.get("skip_first", 1)), outlier_factor=float(exc.get("outlier_factor", 10)))
    acts = extract(model, texts, hook, max_tokens=max_tokens, progress=progress)
    kept = acts.select(exclusion.keep(acts, [hook]))
    side = SAEEvalSide(model=model.name, hook=hook,
                       reconstruction=Reconstruction.from_json(reconstruction_metrics(sae, kept[hook].float())))
    if downstream:
        side.downstream = Downstream.from_json(downstream_loss(model, sae, texts, hook=hook,
                                                               skip_first=exclusion.skip_first, max_tokens=max_tokens))
    if snippets:
        side.latents = [LatentSnippets.from_json(x) for x in top_snippets(sae, kept, hook, n_latents=snippets)]
    return side

"""Direction retrieval: is the translated direction closer to B's native direction for *this*
concept than to B's native directions for every other built-in concept?

All directions are compared in B's standardised coordinates (each dimension divided by its
standard deviation on shared text), where a readout's weight and a difference of class means
are commensurable and a handful of high-variance outlier dimensions cannot dominate the
cosine. Native directions of all K concepts are estimated the same way (difference of class
means over ``n_pairs`` train pairs at the same hook), so the true concept gets no advantage;
chance for top-1 is 1/K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interlingua.activations import Reader
from interlingua.concepts.dataset import ConceptDataset, builtin_names, load_concept
from interlingua.concepts.find import paired_rows
from interlingua.concepts.methods import Readout


def builtin_datasets() -> dict[str, ConceptDataset]:
    return {n: load_concept(n) for n in builtin_names()}


def native_directions(reader: Reader, hook: str, hooks_read: Sequence[str], datasets: dict[str, ConceptDataset], *,
                      n_pairs: int = 20) -> dict[str, torch.Tensor]:
    """``{concept: mean(positive) − mean(negative)}`` of last-token activations at ``hook``, from
    ``n_pairs`` train pairs per concept (K·2·n_pairs short texts). The texts are read at every hook
    of ``hooks_read`` in that one pass, so the reader serves later calls at other hooks."""
    texts, spans = [], []
    for name, ds in datasets.items():
        train = ds.split("train")
        pos, neg = paired_rows(train)
        pos, neg = pos[:n_pairs].tolist(), neg[:n_pairs].tolist()
        spans.append((name, len(texts), len(pos)))
        texts += [train.texts[i] for i in pos + neg]
    x = reader.read(texts, sorted(set(hooks_read) | {hook}, key=reader.model.hook))[hook].double()
    return {name: x[start:start + n].mean(0) - x[start + n:start + 2 * n].mean(0) for name, start, n in spans}


def standardised_cosine(readout_weight: torch.Tensor, mean_difference: torch.Tensor, std: torch.Tensor) -> float:
    """Cosine of a readout weight w and a mean difference Δμ in standardised coordinates:
    cos(w ⊙ σ, Δμ ⊘ σ) — the two forms a linear concept takes there."""
    a = readout_weight.double() * std
    b = mean_difference.double() / std
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def retrieval(readout: Readout, concept: str, natives: dict[str, torch.Tensor], std: torch.Tensor) -> dict:
    """Rank of ``concept`` among all native directions by cosine with the translated readout."""
    cos = {n: standardised_cosine(readout.weight, d, std) for n, d in natives.items()}
    order = sorted(cos, key=cos.get, reverse=True)
    rank = order.index(concept) + 1 if concept in cos else None
    return {"rank": rank, "k": len(cos), "top1": rank == 1, "chance_top1": round(1 / len(cos), 4),
            "cosine_true": round(cos[concept], 4) if concept in cos else None,
            "nearest": [[n, round(cos[n], 4)] for n in order[:3]]}

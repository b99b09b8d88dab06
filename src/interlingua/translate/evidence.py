"""Evidence beside the primary readout: a label-free global map, direction retrieval, unit search, CKA.

Each takes what the translation already read (no forward pass of its own, except the one
pass over the built-in concepts' texts that direction retrieval needs, memoised by the reader)
and every statistic stands next to a null built from whole-document permutations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interlingua.activations import Reader
from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset
from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel
from interlingua.similarity import cka_matrix, standardise
from interlingua.translate.evaluate import EvalSplit
from interlingua.translate.nulls import document_permutations, null_summary
from interlingua.translate.pairs import WordPairs
from interlingua.translate.results import LayerPair, MethodResult


def _z(x: torch.Tensor) -> torch.Tensor:
    return standardise(x)[0]


def layer_pair_map(pairs: WordPairs, hooks_a: Sequence[str], hooks_b: Sequence[str], *, n: int = 1000,
                   seed: int = 0) -> list[LayerPair]:
    """Debiased CKA between every A hook and every B hook on a random subsample of aligned words.

    Each side is standardised per dimension first: on raw activations a few massive outlier
    dimensions (Gemma has some) make up most of the Gram matrix and CKA measures only them.
    """
    rows = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:n]
    cka = cka_matrix([_z(pairs.a[h][rows]) for h in hooks_a], [_z(pairs.b[h][rows]) for h in hooks_b])
    return [LayerPair(hook_a=ha, hook_b=hb, cka_debiased=round(float(cka[i, j]), 4))
            for i, ha in enumerate(hooks_a) for j, hb in enumerate(hooks_b)]


def cka_test(pairs: WordPairs, hook_a: str, hook_b: str, *, draws: int = 200, n: int = 600, seed: int = 0) -> dict:
    """Debiased CKA of the chosen pair against B's rows reassigned across documents (``draws`` times).

    A's Gram matrix is computed once; each draw costs one Gram matrix of B's reassigned rows.
    """
    from interlingua.similarity import _hsic_unbiased

    gen = torch.Generator().manual_seed(seed + 1)
    rows = torch.randperm(len(pairs), generator=gen)[:n]

    def gram(x: torch.Tensor) -> torch.Tensor:
        z = _z(x).float()
        z = z - z.mean(0)
        return (z @ z.T).double()

    k = gram(pairs.a[hook_a][rows])
    hkk = float(_hsic_unbiased(k, k))

    def cka(l: torch.Tensor) -> float:
        return float(_hsic_unbiased(k, l)) / max(hkk * float(_hsic_unbiased(l, l)), 1e-300) ** 0.5

    xb = pairs.b[hook_b]
    value = cka(gram(xb[rows]))
    perms = document_permutations(pairs.doc, draws, seed)
    null = torch.tensor([cka(gram(xb[perms[j][rows]])) for j in range(draws)])
    return {"value": round(value, 6), **null_summary(value, null)}


def procrustes_method(concept_a: Concept, pairs: WordPairs, groups: torch.Tensor, hook_b: str,
                      splits: dict[str, EvalSplit]) -> MethodResult:
    """A's readout carried into B through an orthogonal map between whitened principal subspaces,
    fitted on the unlabelled aligned words only (k chosen on held-out documents)."""
    from interlingua.translate.maps import fit_procrustes_map

    gmap = fit_procrustes_map(pairs.a[concept_a.hook], pairs.b[hook_b], groups=groups)
    readout = gmap.pull_readout(concept_a.readout)
    return MethodResult(target_hook=hook_b, extra=dict(gmap.info),
                        **{name: split.evaluate(readout(split.xb[hook_b])) for name, split in splits.items()})


def direction_retrieval(name: str, readout: Readout, reader_b: Reader, hook_b: str, pairs: WordPairs,
                        dataset: ConceptDataset) -> dict:
    """Rank of the concept among all built-in concepts (plus this one) by standardised cosine."""
    from interlingua.translate.retrieval import builtin_datasets, native_directions, retrieval

    datasets = builtin_datasets()
    datasets[name] = dataset
    natives = native_directions(reader_b, hook_b, [hook_b], datasets, n_pairs=10)
    return retrieval(readout, name, natives, pairs.b[hook_b].double().std(0).clamp_min(1e-8))


def neuron_search(model_b: LoadedModel, layer: int, neuron_inputs: tuple[torch.Tensor, torch.Tensor],
                  score_a: torch.Tensor, word_doc: torch.Tensor, test: EvalSplit,
                  test_inputs: tuple[torch.Tensor, torch.Tensor], *, draws: int = 200, seed: int = 0) -> dict:
    """B's MLP neurons at ``layer`` ranked by correlation with A's score on the aligned words given
    (``neuron_inputs`` = resid_pre and attn_out there), the best against the null of the best
    neuron under document permutations; the best one is also used alone as a detector on test."""
    from interlingua.translate.units import mlp_neurons, unit_search

    units = mlp_neurons(model_b, layer, *neuron_inputs)
    found = unit_search(units, score_a, document_permutations(word_doc, draws, seed))
    at_test = mlp_neurons(model_b, layer, *test_inputs)
    found.update(layer=layer, n_words=len(score_a), best_unit_auroc_test=_best_unit_auroc(found, at_test, test.labels))
    return found


def sae_latent_search(sae, xb: torch.Tensor, score_a: torch.Tensor, word_doc: torch.Tensor,
                      test_xb: torch.Tensor, test: EvalSplit, *, draws: int = 200, seed: int = 0) -> dict:
    """B's SAE latents ranked by correlation with A's score on aligned words, as for neurons."""
    from interlingua.translate.units import unit_search

    with torch.no_grad():
        found = unit_search(sae.dense_latents(xb.float()), score_a, document_permutations(word_doc, draws, seed))
        latents = sae.dense_latents(test_xb.float())
    found.update(hook=sae.cfg.hook_name, best_unit_auroc_test=_best_unit_auroc(found, latents, test.labels))
    return found


def check_sae(sae, model_b: LoadedModel) -> str:
    """The hook an SAE of B was trained at (refused when it does not fit B)."""
    if not sae.cfg.hook_name:
        raise InterlinguaError("this SAE does not record the hook point it was trained on (cfg hook_name).")
    if sae.cfg.d_in != model_b.d_model:
        raise InterlinguaError(f"the SAE reads width {sae.cfg.d_in}; {model_b.name} has width {model_b.d_model}.")
    return model_b.hook(sae.cfg.hook_name).name


def _best_unit_auroc(found: dict, units: torch.Tensor, labels) -> float:
    """Test AUROC of the top unit of a unit search alone, signed by its correlation with A."""
    from interlingua.metrics import auroc

    best = found["top"][0]
    u = units[:, best["unit"]]
    return round(auroc(u if best["corr"] > 0 else -u, labels), 4)

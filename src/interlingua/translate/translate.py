"""Translate a concept from model A to model B by readout transfer, with its evidence.

1. Shared text (the concept's training texts, unlabelled, plus bundled-corpus documents) is
   read by both models at aligned words (:mod:`interlingua.align`).
2. A's concept scores every word; for each candidate B layer a readout is fitted on B's
   activations to reproduce that score (:func:`~interlingua.translate.readout.fit_transfer`).
   The B layer is chosen on held-out *documents* of the shared text (R² of A's score).
3. The translated readout is evaluated on the concept's labelled ``test`` and ``ood`` texts:
   AUROC against the labels, and recovery r = (AUROC_transfer − 0.5) / (AUROC_native_B − 0.5),
   where native B is the concept found directly in B from the labels (the best standardised
   probe over a layer sweep). Where native B is near chance the ratio is undefined.
4. Beside the primary method, the same evaluation for A's readout carried through global maps
   fitted on unlabeled words only (:mod:`~interlingua.translate.maps`), the rank of the
   translated direction among all built-in concepts' native B directions
   (:mod:`~interlingua.translate.retrieval`), and B's MLP neurons ranked against A's score
   (:mod:`~interlingua.translate.units`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interlingua import _io
from interlingua.activations import at_positions
from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset
from interlingua.concepts.find import find_concept
from interlingua.concepts.methods import Readout, standardiser
from interlingua.data.corpus import load_corpus
from interlingua.errors import InterlinguaError
from interlingua.metrics import auroc
from interlingua.models.loaded import LoadedModel
from interlingua.similarity import r2_score, standardise
from interlingua.translate.pairs import WordPairs, paired_words
from interlingua.translate.readout import fit_mlp_transfer, fit_transfer

MIN_NATIVE_GAP = 0.05  # native AUROC within this of 0.5: recovery is undefined


def recovery(auroc_transfer: float | None, auroc_native: float | None) -> float | None:
    """(AUROC_transfer − 0.5) / (AUROC_native − 0.5); None where native is near chance."""
    if auroc_transfer is None or auroc_native is None or auroc_native - 0.5 < MIN_NATIVE_GAP:
        return None
    return round((auroc_transfer - 0.5) / (auroc_native - 0.5), 4)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-300))


def shared_texts(dataset: ConceptDataset, n_corpus_docs: int, max_chars: int = 600) -> list[str]:
    """The concept's train texts (labels unused) and the openings of corpus train documents."""
    docs = [d[:max_chars] for d in load_corpus("train", max_docs=n_corpus_docs)]
    return dataset.split("train").texts + docs


@dataclass
class Translation:
    """A concept of A carried into B, with the evidence for the match."""

    source: Concept
    target: Concept
    metrics: dict
    controls: dict = field(default_factory=dict)
    layer_map: list[dict] = field(default_factory=list)
    layer_pair_map: list[dict] = field(default_factory=list)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.source.save(directory / "source")
        self.target.save(directory / "target")
        _io.write_json(directory / "translation.json", {"metrics": self.metrics, "controls": self.controls,
                                                         "layer_map": self.layer_map,
                                                         "layer_pair_map": self.layer_pair_map})
        return directory


def split_activations(model: LoadedModel, hook: str, dataset: ConceptDataset, split: str) -> torch.Tensor:
    """Last-token activations of a concept split, memoised on the model (controls score many
    readouts on the same texts); the memo dies with the model, so it can never go stale."""
    memo = model.info.setdefault("split_activations", {})
    key = (hook, dataset.digest, split, str(model.dtype))
    if key not in memo:
        memo[key] = at_positions(model, dataset.split(split).texts, hook)[hook]
    return memo[key]


def evaluate_readout(model_b: LoadedModel, hook_b: str, readout: Callable[[torch.Tensor], torch.Tensor],
                     dataset: ConceptDataset) -> dict:
    """AUROC of a B readout against the concept's labels on test and OOD (last token)."""
    out = {}
    for s in ("test", "ood"):
        if s in dataset.splits:
            out[s] = round(auroc(readout(split_activations(model_b, hook_b, dataset, s)), dataset.split(s).labels), 4)
        else:
            out[s] = None
    return out


def _z(x: torch.Tensor) -> torch.Tensor:
    return standardise(x)[0]


def layer_pair_map(pairs: WordPairs, hooks_a: Sequence[str], hooks_b: Sequence[str], *, n: int = 1000,
                   seed: int = 0) -> list[dict]:
    """Debiased CKA between every A hook and every B hook on a random subsample of aligned words.

    Each side is standardised per dimension first: on raw activations a few massive outlier
    dimensions (Gemma has some) make up most of the Gram matrix and CKA measures only them.
    """
    from interlingua.similarity import cka_debiased

    gen = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(pairs), generator=gen)[:n]
    return [{"hook_a": ha, "hook_b": hb, "cka_debiased": round(cka_debiased(_z(pairs.a[ha][rows]), _z(pairs.b[hb][rows])), 4)}
            for ha in hooks_a for hb in hooks_b]


def choose_layer(pairs: WordPairs, score_a: torch.Tensor, hooks_b: Sequence[str], *, lam: float,
                 val_every: int = 5) -> tuple[str, list[dict]]:
    """Fit on most documents, score R² on every ``val_every``-th document; best B hook wins."""
    val = (pairs.doc % val_every) == 0
    rows = []
    for h in hooks_b:
        r = fit_transfer(pairs.b[h][~val], score_a[~val], lam=lam)
        rows.append({"hook_b": h, "r2_val": round(r2_score(score_a[val], r(pairs.b[h][val])), 4)})
    best = max(rows, key=lambda r: r["r2_val"])
    return best["hook_b"], rows


def translate_concept(
    concept_a: Concept,
    model_a: LoadedModel,
    model_b: LoadedModel,
    dataset: ConceptDataset,
    *,
    layers_b: Sequence[int] | None = None,
    n_corpus_docs: int = 60,
    lam: float = 1e-2,
    pos_weight: float = 1.0,
    native_b: Concept | None = None,
    controls: Sequence[str] = (),
    progress: bool = False,
    pairs: WordPairs | None = None,
    extra_texts: Sequence[str] = (),
    mlp: bool = False,
    target_sae=None,
) -> Translation:
    """Readout transfer of ``concept_a`` (found in ``model_a``) into ``model_b``.

    ``layers_b`` are the candidate resid_post layers of B (default: every third layer and the
    last). ``native_b`` may be passed to reuse a concept already found in B. ``controls``
    names the controls to run (see :data:`CONTROLS`; ``("all",)`` for every one).
    ``extra_texts`` join the shared text (e.g. text sampled from A, steered or not); ``mlp``
    adds a non-linear readout to the methods, with its held-out over-fitting check. A
    ``target_sae`` (an :class:`~interlingua.sae.SparseAutoencoder` trained on B) adds its latents
    to the unit search, at the SAE's own hook.
    """
    if concept_a.model is None:
        concept_a.bind(model_a)
    if layers_b is None:
        layers_b = sorted(set(range(1, model_b.n_layers, 3)) | {model_b.n_layers - 1})
    hooks_b = [model_b.hook(f"resid_post.{i}").name for i in layers_b]
    texts = shared_texts(dataset, n_corpus_docs) + list(extra_texts)
    # A hooks for the layer-pair map: every third layer up to the concept's (no deeper: free to read)
    layer_a = model_a.hook(concept_a.hook).layer
    hooks_a = sorted({f"resid_post.{i}" for i in range(1, layer_a, 3)} | {concept_a.hook},
                     key=lambda h: model_a.hook(h))
    if pairs is None:
        pairs = paired_words(model_a, model_b, texts, hooks_a, hooks_b, progress=progress)
    score_a = concept_a.readout(pairs.a[concept_a.hook])
    if float(score_a.std()) == 0:
        raise InterlinguaError(f"concept '{concept_a.name}' scores every aligned word the same in {model_a.name}.")
    hook_b, layer_rows = choose_layer(pairs, score_a, hooks_b, lam=lam)
    readout = fit_transfer(pairs.b[hook_b], score_a, lam=lam, pos_weight=pos_weight)

    native_a = concept_a.metrics.get("auroc_test")
    if native_a is not None and native_a - 0.5 < MIN_NATIVE_GAP:
        raise InterlinguaError(
            f"concept '{concept_a.name}' is at chance in {model_a.name} (test AUROC {native_a}); there is "
            "nothing to translate. Choose a concept the source model detects."
        )
    transfer = evaluate_readout(model_b, hook_b, readout, dataset)
    if native_b is None:
        native_b = find_concept(model_b, dataset, layers=layers_b, n_boot=100, n_null=4)
    methods = {"readout_transfer": {**_as_method(transfer, native_b), "target_hook": hook_b}}
    methods.update(global_map_methods(concept_a, pairs, model_b, hook_b, dataset, native_b))
    if mlp:
        mlp_readout, report = fit_mlp_transfer(pairs.b[hook_b], score_a, pairs.doc, lam=lam)
        methods["mlp_readout"] = {**_as_method(evaluate_readout(model_b, hook_b, mlp_readout, dataset), native_b),
                                  **report, "target_hook": hook_b}
    agreement = pearson(concept_a.readout(split_activations(model_a, concept_a.hook, dataset, "test")),
                        readout(split_activations(model_b, hook_b, dataset, "test")))
    metrics = {
        "concept": concept_a.name, "source": model_a.name, "target": model_b.name,
        "source_hook": concept_a.hook, "target_hook": hook_b,
        "source_layer": model_a.hook(concept_a.hook).layer, "target_layer": model_b.hook(hook_b).layer,
        "auroc_source_test": concept_a.metrics.get("auroc_test"), "auroc_source_ood": concept_a.metrics.get("auroc_ood"),
        "auroc_native_target": native_b.metrics["auroc_test"], "auroc_native_target_ood": native_b.metrics["auroc_ood"],
        "native_target_hook": native_b.hook,
        "auroc_transfer_test": transfer["test"], "auroc_transfer_ood": transfer["ood"],
        "recovery_test": recovery(transfer["test"], native_b.metrics["auroc_test"]),
        "recovery_ood": recovery(transfer["ood"], native_b.metrics["auroc_ood"]),
        "score_correlation_test": round(agreement, 4),
        "r2_val": max(r["r2_val"] for r in layer_rows), "n_words": len(pairs), "n_texts": len(texts),
        "coverage": round(pairs.alignment.coverage, 4),
        "methods": methods,
        "retrieval": direction_retrieval(concept_a.name, readout, model_b, hook_b, pairs, dataset),
        "neuron_search": neuron_search(model_b, model_b.hook(hook_b).layer, pairs, texts, score_a, dataset),
    }
    if target_sae is not None:
        metrics["sae_latent_search"] = sae_latent_search(target_sae, model_b, pairs, texts, score_a, dataset)
    mean, std = standardiser(pairs.b[hook_b])
    target = Concept(
        name=concept_a.name, model_name=model_b.name, hook=hook_b, method="readout_transfer",
        weight=readout.weight.contiguous(), bias=readout.bias, mean=mean, std=std,
        typical_norm=float(pairs.b[hook_b].norm(dim=1).median()),
        metrics={"auroc_test": transfer["test"], "auroc_ood": transfer["ood"]},
        provenance={"translated_from": {"model": model_a.name, "hook": concept_a.hook, "concept": concept_a.name},
                    "layer_sweep": layer_rows, "lam": lam, "pos_weight": pos_weight,
                    "shared_text": {"concept_train_texts": dataset.size("train"), "corpus_docs": n_corpus_docs,
                        "extra_texts": len(extra_texts)}},
        model=model_b,
    )
    ran = run_controls(
        CONTROLS if "all" in controls else controls, concept_a=concept_a, model_a=model_a, model_b=model_b,
        dataset=dataset, native_b=native_b, pairs=pairs, score_a=score_a, hook_b=hook_b, texts=texts, metrics=metrics, lam=lam,
        n_corpus_docs=n_corpus_docs)
    pair_map = layer_pair_map(pairs, [h for h in hooks_a if h in pairs.a], hooks_b)
    from interlingua.similarity import cka_debiased, permutation_test

    sub = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(1))[:1000]
    metrics["cka_debiased_chosen_pair"] = permutation_test(
        cka_debiased, _z(pairs.a[concept_a.hook][sub]), _z(pairs.b[hook_b][sub]), n_perm=20)
    return Translation(source=concept_a, target=target, metrics=metrics, controls=ran, layer_map=layer_rows,
                       layer_pair_map=pair_map)


def _as_method(transfer: dict, native_b: Concept) -> dict:
    return {"auroc_test": transfer["test"], "auroc_ood": transfer["ood"],
            "recovery_test": recovery(transfer["test"], native_b.metrics["auroc_test"]),
            "recovery_ood": recovery(transfer["ood"], native_b.metrics["auroc_ood"])}


def global_map_methods(concept_a: Concept, pairs: WordPairs, model_b: LoadedModel, hook_b: str,
                       dataset: ConceptDataset, native_b: Concept) -> dict:
    """A's readout pulled back through each global map (fitted without labels) and evaluated
    exactly like the primary transfer."""
    from interlingua.translate.maps import MAP_KINDS, fit_map

    out = {}
    for kind in MAP_KINDS:
        gmap = fit_map(kind, pairs.a[concept_a.hook], pairs.b[hook_b], groups=pairs.doc)
        transfer = evaluate_readout(model_b, hook_b, gmap.pull_readout(concept_a.readout), dataset)
        out[f"{kind}_map"] = {**_as_method(transfer, native_b), **gmap.info, "target_hook": hook_b}
    return out


def direction_retrieval(name: str, readout: Readout, model_b: LoadedModel, hook_b: str, pairs: WordPairs,
                        dataset: ConceptDataset) -> dict:
    """Rank of the concept among all built-in concepts (plus this one) by standardised cosine."""
    from interlingua.translate.retrieval import builtin_datasets, native_directions, retrieval

    datasets = builtin_datasets()
    datasets[name] = dataset
    natives = native_directions(model_b, [hook_b], datasets)[hook_b]
    return retrieval(readout, name, natives, pairs.b[hook_b].double().std(0).clamp_min(1e-8))


def neuron_search(model_b: LoadedModel, layer: int, pairs: WordPairs, texts: list[str], score_a: torch.Tensor,
                  dataset: ConceptDataset, max_words: int = 4000) -> dict:
    """B's MLP neurons at the target layer ranked by correlation with A's score on aligned words
    (those of the first texts, up to ``max_words``: one more read of B, kept short); the best one
    is also used alone as a detector on the test texts."""
    from interlingua.translate.pairs import TARGET
    from interlingua.translate.units import mlp_neurons, neuron_hooks, unit_search

    positions = pairs.alignment.token_index[TARGET]
    n_texts = max(1, int((torch.tensor([len(p) for p in positions]).cumsum(0) <= max_words).sum()))
    hooks = neuron_hooks(model_b, layer)
    read = at_positions(model_b, texts[:n_texts], hooks, positions[:n_texts], max_tokens=model_b.context_length)
    n_words = sum(len(p) for p in positions[:n_texts])
    found = unit_search(mlp_neurons(model_b, layer, *(read[h] for h in hooks)), score_a[:n_words])
    test = dataset.split("test")
    at_test = at_positions(model_b, test.texts, hooks)
    neurons = mlp_neurons(model_b, layer, *(at_test[h] for h in hooks))
    found.update(layer=layer, n_words=n_words, best_unit_auroc_test=_best_unit_auroc(found, neurons, test.labels))
    return found


def sae_latent_search(sae, model_b: LoadedModel, pairs: WordPairs, texts: list[str], score_a: torch.Tensor,
                      dataset: ConceptDataset) -> dict:
    """B's SAE latents ranked by correlation with A's score on aligned words, as for neurons."""
    from interlingua.translate.pairs import TARGET
    from interlingua.translate.units import unit_search

    if not sae.cfg.hook_name:
        raise InterlinguaError("this SAE does not record the hook point it was trained on (cfg hook_name).")
    hook = model_b.hook(sae.cfg.hook_name).name
    if sae.cfg.d_in != model_b.d_model:
        raise InterlinguaError(f"the SAE reads width {sae.cfg.d_in}; {model_b.name} has width {model_b.d_model}.")
    xb = pairs.b.get(hook)
    if xb is None:
        xb = at_positions(model_b, texts, hook, pairs.alignment.token_index[TARGET],
                          max_tokens=model_b.context_length)[hook]
    with torch.no_grad():
        found = unit_search(sae.dense_latents(xb.float()), score_a)
        latents = sae.dense_latents(split_activations(model_b, hook, dataset, "test").float())
    found.update(hook=hook, best_unit_auroc_test=_best_unit_auroc(found, latents, dataset.split("test").labels))
    return found


def _best_unit_auroc(found: dict, units: torch.Tensor, labels) -> float:
    """Test AUROC of the top unit of a :func:`unit_search` alone, signed by its correlation with A."""
    best = found["top"][0]
    u = units[:, best["unit"]]
    return round(auroc(u if best["corr"] > 0 else -u, labels), 4)


CONTROLS = ("shuffled_pairing", "label_shuffle", "off_by_one", "random_init_target", "lexical_only_target",
            "self_translation", "synthetic_pair")


def run_controls(names: Sequence[str], *, concept_a: Concept, model_a: LoadedModel, model_b: LoadedModel,
                 dataset: ConceptDataset, native_b: Concept, pairs: WordPairs, score_a: torch.Tensor, hook_b: str, texts: list[str],
                 metrics: dict, lam: float, n_corpus_docs: int) -> dict:
    """Run the named controls; each result says what it must do and whether it did."""
    from interlingua.translate import controls as c

    unknown = set(names) - set(CONTROLS)
    if unknown:
        raise InterlinguaError(f"unknown control(s) {sorted(unknown)}; choose from {', '.join(CONTROLS)} or 'all'.")
    out: dict = {}
    for name in names:
        if name == "shuffled_pairing":
            out[name] = c.shuffled_pairing(pairs, score_a, model_b, hook_b, dataset, native_b, lam=lam)
        elif name == "label_shuffle":
            out[name] = c.label_shuffle(concept_a, model_a, pairs, model_b, hook_b, dataset, native_b, lam=lam)
        elif name == "off_by_one":
            out[name] = c.off_by_one(concept_a, model_a, model_b, hook_b, texts, dataset,
                                     metrics["auroc_transfer_test"], lam=lam)
        elif name in ("random_init_target", "lexical_only_target"):
            kind = "random_init" if name == "random_init_target" else "lexical_only"
            out[name] = c.floor_model(kind, concept_a, model_a, model_b, hook_b, texts, dataset,
                                      metrics["auroc_native_target"], metrics["auroc_transfer_test"], lam=lam)
        elif name == "self_translation":
            out[name] = c.self_translation(concept_a, model_a, dataset, lam=lam, n_corpus_docs=n_corpus_docs)
        elif name == "synthetic_pair":
            out[name] = c.synthetic_pair(pairs, score_a, concept_a)
    return out

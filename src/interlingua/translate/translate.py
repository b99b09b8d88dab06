"""Translate a concept from model A to model B by readout transfer, with its evidence.

The steps of :func:`translate_concept`:

1. **Shared text** (:mod:`~interlingua.translate.shared_text`): corpus openings and A's own
   generations by default, no labelled text; the concept's train texts only on request, scored
   by A out-of-fold (:func:`source_scores`).
2. **Paired reading** (:mod:`~interlingua.translate.pairs`): both models at every aligned word,
   each text read once per model (readers memoise, so no later step reads it again).
3. **Readout** (:mod:`~interlingua.translate.readout`): a ridge readout on B whose optimum is
   A's score; B's hook and λ chosen together by cross-validation over whole documents of the
   shared text (the rank correlation of out-of-fold scores with A's).
4. **Evaluation** (:mod:`~interlingua.translate.evaluate`) on the concept's test and OOD texts,
   which no step above saw: fidelity to A first, then the labels, recovery against B's own
   probe (found on the same layers), paired bootstrap intervals, the bag-of-words baseline.
5. **Controls** (:mod:`~interlingua.translate.controls`), each a test that can fail, and
   **evidence** (:mod:`~interlingua.translate.evidence`): a label-free global map, direction
   retrieval, unit search and the layer-pair CKA map, each against a null.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from interlingua import _io
from interlingua.activations import Reader
from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset, SplitData
from interlingua.concepts.find import find_concept, fit_many
from interlingua.concepts.methods import METHODS, standardiser
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel
from interlingua.translate.controls import DEFAULT_CONTROLS, ControlContext, check_names, read_floor_factory, run_controls
from interlingua.translate.evaluate import MIN_NATIVE_GAP, EvalSplit, recovery
from interlingua.translate.pairs import WordPairs, paired_words
from interlingua.translate.examples import pick_examples, split_scores, with_word_scores
from interlingua.translate.readout import LAMBDAS, RidgeCV, cost_weights, document_folds, fit_mlp_transfer
from interlingua.translate.results import (ControlResult, Cost, Example, LayerPair, LayerRow, MethodResult, NullTest,
                                           Retrieval, Selection, SharedTextInfo, SplitScores, TranslationMetrics,
                                           TranslationResult,
                                           UnitSearch)
from interlingua.translate.shared_text import CONCEPT_TRAIN, SharedText, build_shared_text

__all__ = ["TranslateConfig", "Translation", "recovery", "source_scores", "translate_concept"]


@dataclass(frozen=True)
class TranslateConfig:
    """How a translation is made (one object instead of many keyword arguments)."""

    layers_b: tuple[int, ...] | None = None
    """resid_post layers of B to choose among; native B sweeps the same ones (default: every third and the last)."""
    layers_a: tuple[int, ...] | None = None
    """resid_post layers of A for the layer-pair map (default: every third up to the concept's, so A's forward
    pass stops there); a wider grid costs a deeper pass but lets a reader serve later translations."""
    corpus_docs: int = 60
    """bundled-corpus documents (openings of 600 characters) in the shared text."""
    concept_texts: bool = False
    """also put the concept's train texts in the shared text, scored by A out-of-fold (then not label-free)."""
    lams: tuple[float, ...] = LAMBDAS
    """ridge strengths to choose among (λ·n·‖c‖² on standardised B activations)."""
    folds: int = 5
    """folds of whole documents for choosing B's hook and λ (and for cross-fitting A on concept texts)."""
    pos_weight: float = 1.0
    """cost of errors on words A scores positive relative to the others (the optimum stays A's score)."""
    controls: tuple[str, ...] = DEFAULT_CONTROLS
    """controls to run (``("all",)`` for every registered one)."""
    draws: int = 200
    """draws of every null distribution (≥ 200 supports p ≤ 0.01)."""
    n_boot: int = 1000
    """bootstrap resamples (whole pairs) for every interval."""
    mlp: bool = False
    """also fit a small MLP readout, judged against the linear one on documents neither saw."""
    neuron_words: int = 4000
    """aligned words (the first documents' ones) on which B's MLP neurons are searched."""
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        for name in ("corpus_docs", "folds", "draws", "n_boot", "neuron_words"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "folds" else 0):
                raise InterlinguaError(f"{name} must be a whole number ≥ {2 if name == 'folds' else 0}, not {value!r}.")
        if not all(lam > 0 and lam < float("inf") for lam in self.lams) or not self.lams:
            raise InterlinguaError(f"ridge strengths must be positive and finite, not {self.lams}.")
        if not (self.pos_weight > 0 and self.pos_weight < float("inf")):
            raise InterlinguaError(f"pos_weight must be a positive finite number, not {self.pos_weight}.")
        check_names(self.controls)


@dataclass
class Translation:
    """A concept of A carried into B, with the evidence for the match.

    ``metrics`` holds the headline numbers, ``controls`` each control's verdict, ``layer_map``
    B's candidate hooks and ``layer_pair_map`` the CKA of every pair of hooks; ``scores`` keeps
    both models' score of every evaluation text and ``examples`` the texts where they agree and
    disagree most, scored at every word by both (what the report draws).
    """

    source: Concept
    target: Concept
    metrics: TranslationMetrics
    controls: dict[str, ControlResult] = field(default_factory=dict)
    layer_map: list[LayerRow] = field(default_factory=list)
    layer_pair_map: list[LayerPair] = field(default_factory=list)
    scores: dict[str, SplitScores] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)

    FILES = ("source", "target", "translation.json", "report.html")
    WHAT = "a saved translation (source/, target/, translation.json, report.html)"

    def save(self, directory: str | Path, *, overwrite: bool = True) -> Path:
        """Write ``source/``, ``target/`` (saved concepts) and ``translation.json`` into ``directory`` as one unit.

        All three are written into a fresh directory that then replaces ``directory``
        (:func:`interlingua._io.atomic_dir`), so a kill never mixes two translations. ``directory``
        must be new, empty or a saved translation (replaced only with ``overwrite``).
        """
        directory = Path(directory)
        with _io.writing(directory, beside=True):  # the check and the save, with no other writer in between
            _io.check_replaceable(directory, self.FILES, self.WHAT, overwrite=overwrite)
            with _io.atomic_dir(directory) as tmp:
                self.source.save(tmp / "source")
                self.target.save(tmp / "target")
                _io.write_json(tmp / "translation.json", self.file_json())
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Translation:
        """A translation saved by :meth:`save` (its concepts unbound: bind them to the models to score)."""
        directory = _io.recover_dir(directory)  # a kill while it was being replaced leaves a complete copy aside
        meta_path = directory / "translation.json"
        meta = _io.read_json(meta_path) if meta_path.is_file() else {}
        result = TranslationResult.from_file_json(meta)
        return cls(source=Concept.load(directory / "source"), target=Concept.load(directory / "target"),
                   **{f.name: getattr(result, f.name) for f in fields(TranslationResult) if f.name != "extra"})

    @property
    def result(self) -> TranslationResult:
        """The findings without the two concepts (what the JSON files hold)."""
        return TranslationResult(metrics=self.metrics, controls=self.controls, layer_map=self.layer_map,
                                 layer_pair_map=self.layer_pair_map, scores=self.scores, examples=self.examples)

    def file_json(self) -> dict:
        """What ``translation.json`` holds."""
        return self.result.file_json()

    def to_json(self) -> dict:
        """Everything the CLI's ``--json`` prints: the metrics (flat), controls, maps, scores and examples."""
        return self.result.to_json()


def default_layers(model: LoadedModel) -> tuple[int, ...]:
    return tuple(sorted(set(range(1, model.n_layers, 3)) | {model.n_layers - 1}))


def _refit_args(concept: Concept) -> dict:
    if concept.method not in METHODS:
        raise InterlinguaError(
            f"concept '{concept.name}' ({concept.method}) cannot be refitted in {concept.model_name}, which the "
            f"label-shuffle control and out-of-fold scoring of concept texts need; use a concept found by one of "
            f"{', '.join(METHODS)}, or run without those.")
    prov = concept.provenance
    return {"method": concept.method, "l2": prov.get("l2", 1e-2), "pca_center": prov.get("pca_center", False)}


def source_scores(concept: Concept, xa_words: torch.Tensor, word_doc: torch.Tensor, shared: SharedText,
                  train: SplitData, x_train: torch.Tensor, labellings: Sequence[SplitData] | None = None, *,
                  folds: int = 5, seed: int = 0) -> torch.Tensor:
    """A's concept score at every aligned word: ``[n]`` (or ``[n, k]`` for ``k`` labellings).

    Without ``labellings`` the score is ``concept``'s readout. With them, the concept is refitted
    in A (same method, hook and penalty) on each labelling of its ``train`` split, whose
    last-token activations are ``x_train`` (the label-shuffle null). Words of the concept's own
    train texts (source ``concept_train``) are always scored out-of-fold: by readouts fitted on
    the other folds of train (whole templates, or pairs), so A's score there is never the
    in-sample output of a probe fitted to exactly those labels.
    """
    real = labellings is None
    labs = [train] if real else list(labellings)
    if real:
        scores = concept.readout(xa_words).double()[:, None]
    else:
        args = _refit_args(concept)
        scores = _apply(fit_many(args["method"], x_train, labs, l2=args["l2"], pca_center=args["pca_center"],
                                 seed=seed), xa_words)
    concept_docs = shared.index(CONCEPT_TRAIN)
    if len(concept_docs):
        if len(concept_docs) != len(train):
            raise InterlinguaError("the shared text's concept texts are not the concept's train split.")
        args = _refit_args(concept)
        templates = getattr(train, "templates", None)
        fold_of_text = document_folds(train.groups if templates is None else templates, folds, seed)
        item_of_doc = torch.full((len(shared),), -1, dtype=torch.long)
        item_of_doc[concept_docs] = torch.arange(len(train))
        item = item_of_doc[word_doc]
        for f in range(folds):
            held = fold_of_text == f
            keep = torch.unique(train.groups[~held])
            rs = fit_many(args["method"], x_train[~held], [lab.subset(keep) for lab in labs], l2=args["l2"],
                          pca_center=args["pca_center"], seed=seed)
            words = (item >= 0) & held[item.clamp_min(0)]
            scores[words] = _apply(rs, xa_words[words])
    return scores[:, 0] if real else scores


def _apply(readouts, x: torch.Tensor) -> torch.Tensor:
    weight = torch.stack([r.weight for r in readouts], 1).double()
    return x.double() @ weight + torch.tensor([r.bias for r in readouts], dtype=torch.float64)


def _check_source(concept_a: Concept, model_a: LoadedModel, dataset: ConceptDataset) -> None:
    if concept_a.read != "last":
        raise InterlinguaError(f"concept '{concept_a.name}' is read at labelled words; translation evaluates at the "
                               "last token of each text. Find the concept with --read last.")
    native_a = concept_a.metrics.auroc_test
    if native_a is not None and native_a - 0.5 < MIN_NATIVE_GAP:
        raise InterlinguaError(
            f"concept '{concept_a.name}' is at chance in {model_a.name} (test AUROC {native_a}); there is "
            "nothing to translate. Choose a concept the source model detects.")
    for s in ("train", "test"):
        dataset.require(s)


def translate_concept(
    concept_a: Concept,
    model_a: LoadedModel,
    model_b: LoadedModel,
    dataset: ConceptDataset,
    config: TranslateConfig | None = None,
    *,
    generated: Sequence = (),
    extra_texts: Sequence[str] = (),
    native_b: Concept | None = None,
    reader_a: Reader | None = None,
    reader_b: Reader | None = None,
    target_sae=None,
    **overrides,
) -> Translation:
    """Readout transfer of ``concept_a`` (found in ``model_a``) into ``model_b``, with controls and evidence.

    ``config`` (or keyword ``overrides`` of its fields) says how; ``generated`` holds A's
    generative-mode texts (:func:`interlingua.steer.generative.concept_texts`) and
    ``extra_texts`` any other unlabelled text for the shared text. ``native_b`` reuses a
    concept already found in B (it should come from the same layers); readers (one per model)
    reuse activations already read. A ``target_sae`` (trained on B) adds its latents to the
    unit search, at the SAE's own hook.
    """
    t_start = time.perf_counter()
    cfg = replace(config or TranslateConfig(), **overrides)
    names = check_names(cfg.controls)
    if concept_a.model is None:
        concept_a.bind(model_a)
    _check_source(concept_a, model_a, dataset)
    limit = min(model_a.context_length, model_b.context_length)
    reader_a = reader_a or Reader(model_a, max_tokens=limit, progress=cfg.progress)
    reader_b = reader_b or Reader(model_b, max_tokens=limit, progress=cfg.progress)
    for reader, model in ((reader_a, model_a), (reader_b, model_b)):
        if reader.model is not model:
            raise InterlinguaError(f"a reader given reads {reader.model.name}, not {model.name}.")
    tokens0 = (reader_a.tokens_read, reader_b.tokens_read)
    layers_b = tuple(cfg.layers_b) if cfg.layers_b is not None else default_layers(model_b)
    hooks_b = [model_b.hook(f"resid_post.{i}").name for i in layers_b]
    sae_hook = None
    if target_sae is not None:
        from interlingua.translate.evidence import check_sae

        sae_hook = check_sae(target_sae, model_b)
    shared = build_shared_text(corpus_docs=cfg.corpus_docs, generated=generated, extra_texts=extra_texts,
                               dataset=dataset, concept_texts=cfg.concept_texts)
    layer_a = model_a.hook(concept_a.hook).layer
    grid_a = range(1, layer_a, 3) if cfg.layers_a is None else cfg.layers_a
    hooks_a = sorted({model_a.hook(f"resid_post.{i}").name for i in grid_a} | {concept_a.hook}, key=model_a.hook)
    neuron = _neuron_hooks(model_b, layers_b)
    timings: dict[str, float] = {}

    # 2. paired reading of the shared text, then of the evaluation texts (every text once per model)
    t0 = time.perf_counter()
    pairs = paired_words(model_a, model_b, shared.texts, hooks_a, hooks_b + ([sae_hook] if sae_hook else []),
                         shifted_b="off_by_one" in names, head_hooks_b=[h for hs in neuron.values() for h in hs],
                         head_words=cfg.neuron_words if neuron else 0, reader_a=reader_a, reader_b=reader_b)
    timings["read_shared_text"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    splits, split_texts = _eval_splits(concept_a, dataset, reader_a, reader_b, hooks_b, sae_hook, cfg)
    train = dataset.split("train")
    x_train = reader_a.read(train.texts, concept_a.hook)[concept_a.hook]
    timings["read_concept_texts"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if native_b is None:
        native_b = find_concept(model_b, dataset, layers=layers_b, n_boot=200, n_null=8, reader=reader_b)
    for name, split in splits.items():
        split.native_b = native_b.readout(reader_b.read(split_texts[name], native_b.hook)[native_b.hook])
    timings["native_target"] = time.perf_counter() - t0

    # 3. A's score at the aligned words, then the readout
    t0 = time.perf_counter()
    score_a = source_scores(concept_a, pairs.a[concept_a.hook], pairs.doc, shared, train, x_train,
                            folds=cfg.folds, seed=cfg.seed)
    if float(score_a.std()) == 0:
        raise InterlinguaError(f"concept '{concept_a.name}' scores every aligned word the same in {model_a.name}.")
    weights = cost_weights(score_a, cfg.pos_weight)
    groups = torch.tensor(shared.groups, dtype=torch.long)[pairs.doc]  # folds keep a group (pair, template, prompt) whole
    ridge = RidgeCV({h: pairs.b[h] for h in hooks_b}, groups, lams=cfg.lams, folds=cfg.folds, weights=weights,
                    seed=cfg.seed)
    selection = ridge.select(score_a)
    hook_b, readout = selection.hook(0), selection.readout(0)
    scores_b = {n: selection.scores(s.xb)[:, 0] for n, s in splits.items()}
    results = {n: s.evaluate(scores_b[n]) for n, s in splits.items()}
    timings["readout"] = time.perf_counter() - t0

    # 4. controls, then evidence
    t0 = time.perf_counter()

    def scores_for(labellings):
        return source_scores(concept_a, pairs.a[concept_a.hook], pairs.doc, shared, train, x_train, labellings,
                             folds=cfg.folds, seed=cfg.seed)

    ctx = ControlContext(
        concept_a=concept_a, model_a=model_a, model_b=model_b, dataset=dataset, pairs=pairs, score_a=score_a,
        groups=groups, ridge=ridge, selection=selection, splits=splits, scores_b=scores_b, hooks_b=hooks_b,
        read_floor=read_floor_factory(lambda m: Reader(m, max_tokens=limit), pairs, hooks_b, split_texts),
        source_scores=scores_for, weights=weights, draws=cfg.draws, seed=cfg.seed)
    controls = run_controls(names, ctx)
    timings["controls"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    evidence = _evidence(concept_a, model_b, pairs, groups, readout, hook_b, hooks_a, hooks_b, splits, score_a,
                         neuron, reader_b, dataset, target_sae, sae_hook, cfg)
    if cfg.mlp:
        evidence["methods"]["mlp_readout"] = _mlp_method(pairs.b[hook_b], score_a, groups, selection.lam(0),
                                                         hook_b, splits, cfg.seed)
    timings["evidence"] = time.perf_counter() - t0

    layer_rows = []
    for i, h in enumerate(selection.hooks):
        best = int(selection.cv_rho[i, :, 0].argmax())
        layer_rows.append(LayerRow(hook_b=h, cv_rho=round(float(selection.cv_rho[i, best, 0]), 4),
                                   cv_r2=round(float(selection.cv_r2[i, best, 0]), 4), lam=selection.lams[best]))
    mean, std = standardiser(pairs.b[hook_b])
    target = Concept(
        name=concept_a.name, model_name=model_b.name, hook=hook_b, method="readout_transfer",
        weight=readout.weight.contiguous(), bias=readout.bias, mean=mean, std=std,
        typical_norm=float(pairs.b[hook_b].norm(dim=1).median()),
        metrics={"auroc_test": results["test"].auroc, "auroc_ood": results["ood"].auroc if "ood" in results else None,
                 "fidelity_test": results["test"].fidelity},
        provenance={"translated_from": {"model": model_a.name, "hook": concept_a.hook, "concept": concept_a.name},
                    "layer_sweep": [r.to_json() for r in layer_rows], "lam": selection.lam(0),
                    "pos_weight": cfg.pos_weight, "shared_text": shared.describe()},
        model=model_b,
    )
    t0 = time.perf_counter()
    scores = {n: split_scores(split_texts[n], s.labels, s.score_a, scores_b[n]) for n, s in splits.items()}
    examples = with_word_scores(pick_examples(scores), concept_a, target)
    timings["examples"] = time.perf_counter() - t0

    metrics = _metrics(concept_a, model_a, model_b, native_b, hook_b, selection, results, shared, pairs, evidence,
                       layers_b, cfg)
    metrics.cost = Cost(seconds=round(time.perf_counter() - t_start, 2),
                        seconds_per_step={k: round(v, 2) for k, v in timings.items()},
                        tokens_read_source=reader_a.tokens_read - tokens0[0],
                        tokens_read_target=reader_b.tokens_read - tokens0[1])
    return Translation(source=concept_a, target=target, metrics=metrics, controls=controls, layer_map=layer_rows,
                       layer_pair_map=evidence.pop("layer_pair_map"), scores=scores, examples=examples)


def _neuron_hooks(model_b: LoadedModel, layers_b: Sequence[int]) -> dict[int, list[str]]:
    """The unit search's input hooks per candidate layer, or nothing where B's MLP is not gated."""
    from interlingua.translate.units import mlp_neurons, neuron_hooks

    try:
        mlp_neurons(model_b, layers_b[0], torch.zeros(1, model_b.d_model), torch.zeros(1, model_b.d_model))
    except InterlinguaError:
        return {}
    return {layer: neuron_hooks(model_b, layer) for layer in layers_b}


def _eval_splits(concept_a: Concept, dataset: ConceptDataset, reader_a: Reader, reader_b: Reader,
                 hooks_b: list[str], sae_hook: str | None, cfg: TranslateConfig
                 ) -> tuple[dict[str, EvalSplit], dict[str, list[str]]]:
    """Test and OOD texts read by both models at the last token (B at every candidate hook)."""
    from interlingua.concepts.baselines import bag_of_words_auroc

    train = dataset.split("train")
    extra = [sae_hook] if sae_hook else []
    splits, texts = {}, {}
    for name in ("test", "ood"):
        if name not in dataset.splits:
            continue
        data = dataset.split(name)
        xa = reader_a.read(data.texts, concept_a.hook)[concept_a.hook]
        xb = reader_b.read(data.texts, hooks_b + extra)
        splits[name] = EvalSplit(name=name, labels=data.labels, groups=data.groups, score_a=concept_a.readout(xa),
                                 xb={h: xb[h] for h in hooks_b}, bow=round(bag_of_words_auroc(train, data), 4),
                                 n_boot=cfg.n_boot, seed=cfg.seed)
        texts[name] = data.texts
    return splits, texts


def _mlp_method(xb: torch.Tensor, score_a: torch.Tensor, groups: torch.Tensor, lam: float, hook_b: str,
                splits: dict[str, EvalSplit], seed: int) -> MethodResult:
    mlp, report = fit_mlp_transfer(xb, score_a, groups, lam=lam, seed=seed)
    return MethodResult(target_hook=hook_b, extra=report,
                        **{name: split.evaluate(mlp(split.xb[hook_b])) for name, split in splits.items()})


def _evidence(concept_a, model_b, pairs: WordPairs, groups: torch.Tensor, readout, hook_b, hooks_a, hooks_b, splits, score_a, neuron,
              reader_b, dataset, target_sae, sae_hook, cfg: TranslateConfig) -> dict:
    from interlingua.translate import evidence as ev

    out: dict = {"methods": {"procrustes_map": ev.procrustes_method(concept_a, pairs, groups, hook_b, splits)}}
    out["retrieval"] = ev.direction_retrieval(concept_a.name, readout, reader_b, hook_b, pairs, dataset)
    if cfg.concept_texts:
        out["retrieval"]["note"] = ("this concept's train texts are part of the shared text, and its native "
                                    "direction comes from them: rank 1 is partly built in")
    layer = model_b.hook(hook_b).layer
    if neuron:
        h_pre, h_attn = neuron[layer]
        inputs_test = reader_b.read(dataset.split("test").texts, [h_pre, h_attn])  # one pass, stopping at the layer
        n = pairs.n_head
        out["neuron_search"] = ev.neuron_search(
            model_b, layer, (pairs.b_head[h_pre], pairs.b_head[h_attn]), score_a[:n], pairs.doc[:n], splits["test"],
            (inputs_test[h_pre], inputs_test[h_attn]), draws=cfg.draws, seed=cfg.seed)
    else:
        out["neuron_search"] = {"skipped": f"{model_b.name}'s MLP is not gated (gate_proj / up_proj)"}
    if target_sae is not None:
        test_sae = reader_b.read(dataset.split("test").texts, sae_hook)[sae_hook]
        out["sae_latent_search"] = ev.sae_latent_search(target_sae, pairs.b[sae_hook], score_a, pairs.doc, test_sae,
                                                        splits["test"], draws=cfg.draws, seed=cfg.seed)
    out["layer_pair_map"] = ev.layer_pair_map(pairs, [h for h in hooks_a if h in pairs.a], hooks_b, seed=cfg.seed)
    out["cka_debiased_chosen_pair"] = ev.cka_test(pairs, concept_a.hook, hook_b, draws=cfg.draws, seed=cfg.seed)
    return out


def _metrics(concept_a, model_a, model_b, native_b, hook_b, selection, results, shared: SharedText,
             pairs: WordPairs, evidence: dict, layers_b, cfg: TranslateConfig) -> TranslationMetrics:
    test = results["test"]
    native_layers = sorted({r["layer"] for r in native_b.provenance.get("sweep", [])})
    h, lam = selection.hook_index[0], selection.lam_index[0]
    return TranslationMetrics(
        concept=concept_a.name, source=model_a.name, target=model_b.name,
        source_hook=concept_a.hook, target_hook=hook_b,
        source_layer=model_a.hook(concept_a.hook).layer, target_layer=model_b.hook(hook_b).layer,
        label_free=shared.label_free,
        auroc_source_test=concept_a.metrics.auroc_test, auroc_source_ood=concept_a.metrics.auroc_ood,
        native_target_hook=native_b.hook, native_target_layers=native_layers,
        native_target_same_layers=native_layers == sorted(layers_b) if native_layers else None,
        test=test, ood=results.get("ood"),
        selection=Selection(
            criterion="cross-validated rank correlation (Spearman) of out-of-fold readout scores with A's score, over "
                      "folds of whole shared-text documents (a selection criterion, not a held-out estimate)",
            folds=cfg.folds, hook_b=hook_b, lam=selection.lam(0), cv_rho=round(float(selection.cv_rho[h, lam, 0]), 4),
            cv_r2=round(float(selection.cv_r2[h, lam, 0]), 4), lams=list(selection.lams)),
        shared_text=SharedTextInfo.from_json({**shared.describe(), "aligned_words": len(pairs),
                                              "coverage": round(pairs.alignment.coverage, 4)}),
        n_words=len(pairs), n_texts=len(shared),
        methods={"readout_transfer": MethodResult(target_hook=hook_b, test=test, ood=results.get("ood")),
                 **evidence["methods"]},
        retrieval=Retrieval.from_json(evidence["retrieval"]),
        neuron_search=UnitSearch.from_json(evidence["neuron_search"]),
        sae_latent_search=UnitSearch.from_json(evidence["sae_latent_search"]) if "sae_latent_search" in evidence
        else None,
        cka_debiased_chosen_pair=NullTest.from_json(evidence["cka_debiased_chosen_pair"]),
        config={"layers_b": list(layers_b), "layers_a": None if cfg.layers_a is None else list(cfg.layers_a),
                "corpus_docs": cfg.corpus_docs, "concept_texts": cfg.concept_texts, "lams": list(cfg.lams),
                "folds": cfg.folds, "pos_weight": cfg.pos_weight, "draws": cfg.draws, "n_boot": cfg.n_boot,
                "seed": cfg.seed},
    )

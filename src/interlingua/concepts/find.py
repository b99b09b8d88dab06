"""Find a concept in a model: layer sweep on validation data, fit, evaluate against nulls.

The protocol (DESIGN.md, "Evaluation protocol"):

1. read activations for every split in one pass (last token of each text, or labelled words);
2. hold out a validation part of ``train`` (whole templates when the file names them, else
   whole pairs; :func:`validation_split`), sweep layers × methods on it and choose the layer
   on validation AUROC only — never on test;
3. refit on all of ``train`` at the chosen layer; report AUROC on ``test`` and ``ood`` with
   bootstrap confidence intervals (pairs resampled whole);
4. run the same pipeline with the training labels shuffled (must give ≈ 0.5) and score random
   directions, each with its null band.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from interlingua.activations import Reader
from interlingua.concepts.concept import Concept, ConceptMetrics
from interlingua.concepts.dataset import ConceptDataset, SplitData
from interlingua.concepts.methods import (
    METHODS,
    Readout,
    diff_of_means,
    logistic_probe,
    logistic_probes,
    pca_of_differences,
    random_readout,
    standardiser,
)
from interlingua.errors import InterlinguaError
from interlingua.metrics import auroc, auroc_null_band, bootstrap_ci, dprime, null_band
from interlingua.models.loaded import LoadedModel


def _num(x: float) -> float:
    return x if x == x else float("-inf")


def fit(method: str, x: torch.Tensor, data: SplitData, *, pca_center: bool = False, l2: float = 1e-2,
        seed: int = 0) -> Readout:
    """Fit one method on activations ``x`` (rows aligned with ``data``)."""
    y = data.labels
    if method == "diff_of_means":
        return diff_of_means(x, y)
    if method == "logistic":
        return logistic_probe(x, y, l2=l2)
    if method == "pca":
        pos, neg = paired_rows(data, seed)
        return pca_of_differences(x[pos], x[neg], center=pca_center)
    raise InterlinguaError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}.")


def fit_many(method: str, x: torch.Tensor, datas: Sequence[SplitData], *, pca_center: bool = False,
             l2: float = 1e-2, seed: int = 0) -> list[Readout]:
    """:func:`fit` on the same activations for several labellings (e.g. the shuffled labels of a
    null distribution); logistic probes are fitted in one joint solve."""
    if method != "logistic":
        return [fit(method, x, d, pca_center=pca_center, l2=l2, seed=seed) for d in datas]
    labels = torch.stack([d.labels for d in datas], 1)
    weight, bias = logistic_probes(x, labels, l2=l2)
    return [Readout(weight=weight[:, j].contiguous(), bias=float(bias[j])) for j in range(len(datas))]


def paired_rows(data: SplitData, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of (positive, negative) pairs: the dataset's pairs, or a seeded random
    matching of positives to negatives when the split is made of labelled texts."""
    if data.pairs is not None:
        return data.pairs[:, 0], data.pairs[:, 1]
    gen = torch.Generator().manual_seed(seed)
    pos = data.binary.nonzero().squeeze(1)
    neg = (~data.binary).nonzero().squeeze(1)
    pos, neg = pos[torch.randperm(len(pos), generator=gen)], neg[torch.randperm(len(neg), generator=gen)]
    n = min(len(pos), len(neg))
    return pos[:n], neg[:n]


def shuffle_labels(data: SplitData, gen: torch.Generator) -> SplitData:
    """The same split with labels shuffled: pairs have their two labels swapped at random
    (class balance kept), labelled texts have their labels permuted."""
    labels = data.labels.clone()
    if data.pairs is not None:
        flip = torch.rand(len(data.pairs), generator=gen) < 0.5
        p, n = data.pairs[flip, 0], data.pairs[flip, 1]
        labels[p], labels[n] = data.labels[n], data.labels[p]
        pairs = data.pairs.clone()
        pairs[flip] = pairs[flip].flip(1)
    else:
        labels = labels[torch.randperm(len(labels), generator=gen)]
        pairs = None
    return SplitData(texts=data.texts, labels=labels, groups=data.groups, pairs=pairs, words=data.words,
                     templates=data.templates)


def _word_positions(model: LoadedModel, data: SplitData) -> tuple[list[list[int]], SplitData]:
    from interlingua.align import last_token_of_words, tokenize_offsets

    offsets = tokenize_offsets(data.texts, model.tokenizer)
    positions, labels, groups, templates = [], [], [], []
    for t, spans in enumerate(data.words or []):
        idx = last_token_of_words(offsets[t], [(s, e) for s, e, _ in spans])
        keep = [(i, lab) for i, (_, _, lab) in zip(idx, spans) if i is not None]
        positions.append([i for i, _ in keep])
        labels += [lab for _, lab in keep]
        groups += [int(data.groups[t])] * len(keep)
        templates += [int(data.templates[t])] * len(keep)
    flat = SplitData(texts=[], labels=torch.tensor(labels), groups=torch.tensor(groups, dtype=torch.long),
                     templates=torch.tensor(templates, dtype=torch.long))
    return positions, flat


def validation_split(data: SplitData, val_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, str]:
    """The groups (pairs) of ``data`` held out for validation, and the unit they were drawn by.

    Whole templates are held out when the split names templates, so that no template has items
    on both sides (items of one template are near-duplicates: a validation AUROC over a template
    the fit has seen is an in-distribution number). A seeded permutation of the templates is cut
    at ``val_fraction`` (at least two templates held out); when fewer than two templates would
    be left to fit on, whole pairs are drawn instead, exactly as for a file without templates.
    Returns ``(validation group ids, "templates" | "pairs")``.
    """
    gen = torch.Generator().manual_seed(seed)
    if not torch.equal(data.templates, data.groups):
        template_ids = torch.unique(data.templates)
        template_ids = template_ids[torch.randperm(len(template_ids), generator=gen)]
        n_val = max(2, int(round(val_fraction * len(template_ids))))
        if len(template_ids) - n_val >= 2:
            val = torch.isin(data.templates, template_ids[:n_val])
            return torch.unique(data.groups[val]), "templates"
        gen = torch.Generator().manual_seed(seed)
    group_ids = torch.unique(data.groups)
    group_ids = group_ids[torch.randperm(len(group_ids), generator=gen)]
    n_val = max(2, int(round(val_fraction * len(group_ids))))
    return group_ids[:n_val], "pairs"


def find_concept(
    model: LoadedModel,
    dataset: ConceptDataset,
    *,
    hook: str | None = None,
    layers: Sequence[int] | None = None,
    method: str = "logistic",
    read: str = "last",
    seed: int = 0,
    val_fraction: float = 0.25,
    pca_center: bool = False,
    l2: float = 1e-2,
    n_boot: int = 500,
    n_null: int = 20,
    batch_tokens: int = 4096,
    progress: bool = False,
    reader: Reader | None = None,
) -> Concept:
    """Find ``dataset``'s concept in ``model``; the result carries its metrics and layer sweep.

    ``hook`` fixes the hook point; otherwise ``resid_post`` of every layer in ``layers``
    (default: all) is swept and the layer with the best validation AUROC for ``method`` wins.
    A ``reader`` (:class:`~interlingua.activations.Reader` of ``model``) serves and keeps the
    activations, so that later steps need not read the concept's texts again.
    """
    from interlingua import __version__

    if method not in METHODS:
        raise InterlinguaError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    if read not in ("last", "words"):
        raise InterlinguaError(f"read must be 'last' or 'words', not {read!r}.")
    dataset.require("train", read=read)
    dataset.require("test", read=read)
    has_ood = "ood" in dataset.splits
    if has_ood:
        dataset.require("ood", read=read)
    if hook is not None:
        hooks = [model.hook(hook).name]
    else:
        chosen = range(model.n_layers) if layers is None else layers
        hooks = [model.hook(f"resid_post.{i}").name for i in chosen]
    splits = {s: dataset.split(s) for s in ("train", "test", "ood") if s in dataset.splits}

    # 1. activations of every split, in one pass over all texts
    texts = [t for s in splits.values() for t in s.texts]
    if read == "words":
        per = {s: _word_positions(model, d) for s, d in splits.items()}
        positions = [p for s in splits for p in per[s][0]]
        splits = {s: per[s][1] for s in splits}
    else:
        positions = None
    if reader is None:
        reader = Reader(model, batch_tokens=batch_tokens, progress=progress)
    elif reader.model is not model:
        raise InterlinguaError(f"the reader given reads {reader.model.name}, not {model.name}.")
    acts = reader.read(texts, hooks, positions)
    bounds, at = {}, 0
    for s, d in splits.items():
        bounds[s] = (at, at + len(d))
        at += len(d)
    X = {h: {s: acts[h][a:b] for s, (a, b) in bounds.items()} for h in hooks}

    # 2. validation split of train, by whole templates (or whole pairs when there are too few)
    train = splits["train"]
    val_groups, val_unit = validation_split(train, val_fraction, seed)
    val_mask = torch.isin(train.groups, val_groups)
    fit_mask = ~val_mask
    fit_groups = torch.unique(train.groups[fit_mask])
    fit_data, val_data = train.subset(fit_groups), train.subset(val_groups)

    sweep = []
    methods = [m for m in METHODS if m != "pca" or (train.pairs is not None or read == "last")]
    for h in tqdm(hooks, desc="layer sweep", disable=not progress or len(hooks) == 1):
        row = {"hook": h, "layer": model.hook(h).layer}
        for m in methods:
            try:
                r = fit(m, X[h]["train"][fit_mask], fit_data, pca_center=pca_center, l2=l2, seed=seed)
                val_scores = r(X[h]["train"][val_mask])
                row[f"{m}_val"] = round(auroc(val_scores, val_data.labels), 4)
                row[f"{m}_val_dprime"] = round(dprime(val_scores, val_data.labels), 3)
                row[f"{m}_test"] = round(auroc(r(X[h]["test"]), splits["test"].labels), 4)
            except ValueError:  # a class missing from a tiny validation part
                row[f"{m}_val"] = row[f"{m}_test"] = row[f"{m}_val_dprime"] = float("nan")
        sweep.append(row)
    # Highest validation AUROC; ties (common at 1.0) broken by validation d′, then the earlier layer.
    best = max(sweep, key=lambda r: (_num(r[f"{method}_val"]), _num(r[f"{method}_val_dprime"]), -r["layer"]))
    h = best["hook"]

    # 3. refit on all of train at the chosen hook, evaluate with bootstrap intervals
    readout = fit(method, X[h]["train"], train, pca_center=pca_center, l2=l2, seed=seed)
    metrics: dict = {"method": method, "hook": h, "layer": best["layer"], "auroc_val": best[f"{method}_val"]}
    for s in ("test", "ood"):
        if s not in splits:
            metrics[f"auroc_{s}"] = None
            continue
        scores, labels = readout(X[h][s]), splits[s].labels
        metrics[f"auroc_{s}"] = round(auroc(scores, labels), 4)
        lo, hi = bootstrap_ci(lambda idx: auroc(scores[idx], labels[idx]), len(labels), n_boot=n_boot,
                              seed=seed, groups=splits[s].groups)
        metrics[f"auroc_{s}_ci95"] = [round(lo, 4), round(hi, 4)]
        if splits[s].pairs is not None:
            p = splits[s].pairs
            metrics[f"pair_accuracy_{s}"] = round(float((scores[p[:, 0]] > scores[p[:, 1]]).float().mean()), 4)

    # 4. nulls: shuffled training labels (same pipeline), random directions
    test = splits["test"]
    shuffled = []
    for i in range(n_null):
        g = torch.Generator().manual_seed(seed + 1000 + i)
        r = fit(method, X[h]["train"], shuffle_labels(train, g), pca_center=pca_center, l2=l2, seed=seed + i)
        shuffled.append(auroc(r(X[h]["test"]), test.labels))
    randoms = []
    g = torch.Generator().manual_seed(seed + 2000)
    for _ in range(n_null):
        randoms.append(auroc(random_readout(model.d_model, g)(X[h]["test"]), test.labels))
    n_pos, n_neg = int(test.binary.sum()), int((~test.binary).sum())
    metrics.update({
        "auroc_shuffled_labels": round(sum(shuffled) / len(shuffled), 4),
        "auroc_shuffled_labels_band": [round(v, 4) for v in null_band(shuffled)],
        "auroc_random_direction": round(sum(randoms) / len(randoms), 4),
        "auroc_random_direction_band": [round(v, 4) for v in null_band(randoms)],
        "auroc_chance_band": [round(v, 4) for v in auroc_null_band(n_pos, n_neg)],
        "n_train": len(train), "n_test": len(test), "n_ood": len(splits["ood"]) if has_ood else 0,
    })
    mean, std = standardiser(X[h]["train"])
    provenance = {
        "data": {"concept": dataset.name, "path": dataset.path, "sha256_16": dataset.digest,
                 "fit_split": "train", "val_fraction": val_fraction, "val_split_by": val_unit,
                 "layer_chosen_on": "validation part of train"},
        "seed": seed, "read": read, "pca_center": pca_center, "l2": l2, "n_boot": n_boot, "n_null": n_null,
        "model_source": model.source, "dtype": str(model.dtype).removeprefix("torch."),
        "interlingua_version": __version__, "sweep": sweep,
    }
    return Concept(
        name=dataset.name, model_name=model.name, hook=h, method=method, weight=readout.weight.contiguous(),
        bias=readout.bias, mean=mean, std=std, typical_norm=float(X[h]["train"].norm(dim=1).median()),
        read=read, metrics=ConceptMetrics.from_json(metrics), provenance=provenance, model=model,
    )

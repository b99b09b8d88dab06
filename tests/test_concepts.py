"""Concept definitions, discovery methods, the find pipeline and saved concepts."""

import json

import pytest
import torch

from interlingua.concepts import Concept, find_concept, load_concept
from interlingua.concepts.dataset import from_dict
from interlingua.concepts.find import shuffle_labels
from interlingua.concepts.methods import diff_of_means, logistic_probe, pca_of_differences
from interlingua.errors import InterlinguaError
from interlingua.metrics import auroc, auroc_null_band, bootstrap_ci


# ---- metrics -----------------------------------------------------------------------------------

def test_auroc_matches_pairwise_definition():
    gen = torch.Generator().manual_seed(0)
    s = torch.randint(0, 5, (60,), generator=gen).float()  # many ties
    y = torch.rand(60, generator=gen) > 0.4
    pairs = [(float(a > b) + 0.5 * float(a == b)) for a, ya in zip(s, y) if ya for b, yb in zip(s, y) if not yb]
    assert auroc(s, y) == pytest.approx(sum(pairs) / len(pairs))
    assert auroc(torch.arange(4.0), torch.tensor([0, 0, 1, 1])) == 1.0
    assert auroc(torch.ones(3), torch.ones(3)) != auroc(torch.ones(3), torch.ones(3))  # NaN, one class


def test_bootstrap_interval_brackets_estimate():
    gen = torch.Generator().manual_seed(1)
    y = torch.arange(200) % 2
    s = y + torch.randn(200, generator=gen)
    lo, hi = bootstrap_ci(lambda i: auroc(s[i], y[i]), 200, n_boot=300)
    assert lo < auroc(s, y) < hi and hi - lo < 0.2


# ---- methods recover a planted direction ---------------------------------------------------------

def planted(n=400, d=64, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=gen)
    v /= v.norm()
    y = (torch.arange(n) % 2).float()
    x = torch.randn(n, d, generator=gen) + 5.0 + scale * y[:, None] * v  # offset: not centred data
    return x, y, v


@pytest.mark.parametrize("fit", [diff_of_means, lambda x, y: logistic_probe(x, y, l2=1e-1)])
def test_method_recovers_planted_direction(fit):
    x, y, v = planted(n=4000)
    r = fit(x, y)
    assert float(r.direction @ v) > 0.99
    assert auroc(r(x), y) > 0.9


@pytest.mark.parametrize("center", [False, True])
def test_pca_of_differences_recovers_planted_direction(center):
    gen = torch.Generator().manual_seed(2)
    d, n = 64, 300
    v = torch.randn(d, generator=gen)
    v /= v.norm()
    base = torch.randn(n, d, generator=gen) * 3
    strength = 2 + torch.rand(n, generator=gen) * 4  # varying, so centred PCA still sees v
    pos = base + strength[:, None] * v + 0.05 * torch.randn(n, d, generator=gen)
    neg = base + 0.05 * torch.randn(n, d, generator=gen)
    r = pca_of_differences(pos, neg, center=center)
    assert float(r.direction @ v) > 0.99  # sign fixed: positives score higher
    assert float((r(pos) > r(neg)).float().mean()) > 0.99


def test_logistic_with_outlier_dimension():
    """Standardising matters: one huge-variance dimension must not swamp the probe."""
    x, y, v = planted(n=2000, d=32)
    x[:, 0] = x[:, 0] * 1000
    r = logistic_probe(x, y, l2=1e-1)
    assert auroc(r(x), y) > 0.9


def test_shuffled_labels_are_at_chance():
    x, y, _ = planted(n=400)
    data = from_dict({"name": "p", "train": [{"text": f"t{i}", "label": int(l)} for i, l in enumerate(y)]}).split("train")
    shuffled = shuffle_labels(data, torch.Generator().manual_seed(0))
    assert int(shuffled.binary.sum()) == int(data.binary.sum())
    r = logistic_probe(x, shuffled.labels)
    test_x = x + torch.randn_like(x)
    lo, hi = auroc_null_band(200, 200, level=0.99)
    assert lo < auroc(r(test_x), y) < hi


# ---- the concept file format --------------------------------------------------------------------

def pairs(n, fmt="{} good", neg="{} bad", start=0):
    return [{"positive": fmt.format(i), "negative": neg.format(i)} for i in range(start, start + n)]


def write(tmp_path, obj, name="c.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return p


def test_file_round_trip_and_splits(tmp_path):
    obj = {"name": "toy", "description": "d", "train": pairs(10), "test": pairs(5, start=10),
           "ood": [{"text": "x is fine", "label": 1}, {"text": "y is awful", "label": 0}] * 1}
    ds = load_concept(write(tmp_path, obj))
    assert ds.splits == ["train", "test", "ood"] and ds.size("train") == 10
    tr = ds.split("train")
    assert len(tr) == 20 and tr.pairs.shape == (10, 2) and tr.labels[tr.pairs[:, 0]].eq(1).all()


@pytest.mark.parametrize("obj,match", [
    ({"name": "x", "train": [{"text": "a", "label": 1}, {"text": "b", "label": 1}]}, "only positive examples"),
    ({"name": "x", "train": pairs(3) + [{"positive": "0 good", "negative": "zzz"}]}, r"line \d+ .*duplicate text '0 good'"),
    ({"name": "x", "train": pairs(3) + [{"positive": "   ", "negative": "q"}]}, "empty"),
    ({"name": "x", "train": [{"text": "a", "label": 2}, {"text": "b", "label": 0}]}, "label"),
    ({"name": "x", "train": pairs(3), "dev": pairs(2, start=5)}, "unknown split"),
    ({"name": "x", "test": pairs(3)}, "no \"train\""),
    ({"name": "x", "train": [{"text": "the cat", "label": 1, "words": [["dog", 1]]}, {"text": "b", "label": 0}]}, "not found"),
    ({"name": "x", "train": pairs(3) + [{"positive": "p", "negative": "n", "id": 4}]}, r"line \d+ .*not \['id'\]"),
    ({"name": "x", "train": [{"text": "a", "label": 1, "note": "?"}, {"text": "b", "label": 0}]}, r"not \['note'\]"),
    ({"name": "x", "train": pairs(3) + [{"positive": "p", "negative": "n", "template": 3}]}, "template.*non-empty string"),
    ({"name": "x", "train": [{"text": "a", "label": 1, "template": ""}, {"text": "b", "label": 0}]}, "template"),
])
def test_bad_concept_files_name_file_and_problem(tmp_path, obj, match):
    path = write(tmp_path, obj)
    with pytest.raises(InterlinguaError, match=match) as err:
        load_concept(path)
    assert str(path) in str(err.value)


def test_template_field_round_trips_and_numbers_templates_across_splits(tmp_path):
    def tagged(n, template, start):
        return [dict(p, template=template) for p in pairs(n, start=start)]

    obj = {"name": "t", "train": tagged(3, "frame/a", 0) + tagged(2, "frame/b", 3) + pairs(1, start=5),
           "test": tagged(2, "frame/c", 10) + [{"text": "lone text", "label": 1, "template": "frame/a"},
                                                {"text": "other text", "label": 0}]}
    ds = load_concept(write(tmp_path, obj))
    assert ds.items["train"][0]["template"] == "frame/a"  # kept as written
    assert ds.template_names == ["frame/a", "frame/b", "frame/c"]
    tr, te = ds.split("train"), ds.split("test")
    # both texts of a pair share the template; one id per template string, the same in every split
    assert tr.templates.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 3 + 5, 3 + 5]
    assert te.templates.tolist() == [2, 2, 2, 2, 0, 3 + 3]
    sub = tr.subset(torch.tensor([1, 3]))
    assert sub.templates.tolist() == [0, 0, 1, 1] and sub.groups.tolist() == [1, 1, 3, 3]
    # no template anywhere: every pair / text is its own template, i.e. templates == groups
    plain = load_concept(write(tmp_path, {"name": "p", "train": pairs(4)}, "p.json")).split("train")
    assert torch.equal(plain.templates, plain.groups)
    assert torch.equal(shuffle_labels(tr, torch.Generator().manual_seed(0)).templates, tr.templates)


def test_invalid_json_names_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"name": "x",\n "train": [\n  {"positive": "a" "negative": "b"}]}')
    with pytest.raises(InterlinguaError, match=r"bad.json line 3: not valid JSON"):
        load_concept(p)


def test_too_few_examples_for_split(tmp_path):
    ds = load_concept(write(tmp_path, {"name": "x", "train": pairs(10), "test": pairs(2, start=20)}))
    with pytest.raises(InterlinguaError, match="split 'test' has 2 positive and 2 negative.*at least 4"):
        ds.require("test")


def test_unknown_concept_name():
    with pytest.raises(InterlinguaError, match="unknown concept 'no_such_concept'.*concept list"):
        load_concept("no_such_concept")


def test_word_labels(tmp_path):
    ds = load_concept(write(tmp_path, {"name": "w", "train": [
        {"text": "the cat and the cats", "label": 1, "words": [["cat", 0], ["cats", 1]]},
        {"text": "dogs", "label": 0, "words": [["dogs", 1]]}]}))
    assert ds.split("train").words[0] == [(4, 7, 0.0), (16, 20, 1.0)]


# ---- the find pipeline on a tiny model -----------------------------------------------------------

@pytest.fixture(scope="module")
def toy_concept():
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in
             enumerate(names * 4)]
    return from_dict({"name": "yes_no", "description": "yes vs no", "train": items[:30],
                      "test": items[30:42], "ood": items[42:]})


def test_find_concept_reports_sweep_metrics_and_nulls(tiny, toy_concept):
    c = find_concept(tiny, toy_concept, method="diff_of_means", n_boot=50, n_null=5)
    m = c.metrics
    assert {"auroc_test", "auroc_ood", "auroc_shuffled_labels", "layer", "method", "auroc_test_ci95",
            "auroc_random_direction_band", "auroc_chance_band"} <= set(m.to_json())  # the saved keys
    assert m.auroc_test_ci95[0] <= m.auroc_test <= m.auroc_test_ci95[1] and m.method == "diff_of_means"
    sweep = c.provenance["sweep"]
    assert [r["layer"] for r in sweep] == list(range(tiny.n_layers))
    assert {"diff_of_means_val", "logistic_val", "pca_val", "logistic_test"} <= set(sweep[0])
    # the layer is chosen on validation, never on test
    best_val = max(r["diff_of_means_val"] for r in sweep)
    chosen = [r for r in sweep if r["layer"] == m.layer][0]
    assert chosen["diff_of_means_val"] == best_val
    assert chosen["diff_of_means_val_dprime"] == max(r["diff_of_means_val_dprime"] for r in sweep
                                                     if r["diff_of_means_val"] == best_val)
    assert c.hook == f"resid_post.{m.layer}" and c.weight.shape == (tiny.d_model,)


def test_concept_save_load_bit_exact_and_score(tiny, toy_concept, tmp_path):
    c = find_concept(tiny, toy_concept, hook="resid_post.1", method="logistic", n_boot=20, n_null=3)
    c.save(tmp_path / "c")
    back = Concept.load(tmp_path / "c", model=tiny)
    for k in ("weight", "mean", "std"):
        assert torch.equal(getattr(c, k), getattr(back, k))
    assert back.bias == c.bias and back.metrics == c.metrics and back.provenance == c.provenance
    texts = ["Anna said yes 3.", "Ben said no 7."]
    assert torch.equal(back.score(texts), c.score(texts))
    words = c.score(["Anna said yes."], per="word")
    assert [w for w, *_ in words[0]] == ["Anna", "said", "yes", "."]


def test_bind_wrong_width(tiny, toy_concept):
    c = find_concept(tiny, toy_concept, hook="resid_post.0", n_boot=10, n_null=2)
    c.weight = torch.zeros(7)
    with pytest.raises(InterlinguaError, match="width"):
        c.bind(tiny)


def test_bind_same_width_other_model(llama, gemma, toy_concept, tmp_path):
    """Both tiny models are 64 wide: only the name tells a concept of one from the other."""
    c = find_concept(llama, toy_concept, hook="resid_post.0", n_boot=10, n_null=2)
    c.save(tmp_path / "c")
    with pytest.raises(InterlinguaError, match="found in tiny-llama, not in tiny-gemma3"):
        Concept.load(tmp_path / "c", model=gemma)


def test_find_unknown_method_and_hook(llama, toy_concept):
    with pytest.raises(InterlinguaError, match="unknown method"):
        find_concept(llama, toy_concept, method="svm")
    with pytest.raises(InterlinguaError, match="Valid hook points"):
        find_concept(llama, toy_concept, hook="resid_post.40")


def test_find_reads_labelled_words(llama):
    """read='words': one example per labelled word, read at the word's last token."""
    nouns = ["cat", "dog", "hat", "cup", "pen", "box", "car", "bed", "map", "jar"]
    items = []
    for i, n in enumerate(nouns * 3):
        items.append({"text": f"the {n}s and the {n} {i}", "label": 1, "words": [[f"{n}s", 1], [n, 0]]})
    ds = from_dict({"name": "plural_words", "train": items[:20], "test": items[20:]})
    c = find_concept(llama, ds, read="words", hook="resid_post.1", method="diff_of_means", n_boot=10, n_null=2)
    assert c.read == "words" and c.metrics.n_train == 40 and c.metrics.n_test == 20


# ---- validation held out by whole templates ------------------------------------------------------

def templated_concept(n_templates: int, per_template: int = 4):
    frames = ["{} said yes {}.", "Then {} said yes {}.", "{} quietly said yes {}.", "Later {} said yes {}.",
              "{} said yes again {}.", "I think {} said yes {}.", "{} said yes twice {}.", "So {} said yes {}."]
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana"]
    items = []
    for t in range(n_templates):
        for i in range(per_template):
            yes = frames[t].format(names[i], t * 10 + i)
            items.append({"positive": yes, "negative": yes.replace("yes", "no"), "template": f"frame/{t}"})
    gen = torch.Generator().manual_seed(5)
    items = [items[i] for i in torch.randperm(len(items), generator=gen).tolist()]  # templates interleaved
    test = [{"positive": f"{n} said yes at last {i}.", "negative": f"{n} said no at last {i}.", "template": "test/0"}
            for i, n in enumerate(names)]
    return from_dict({"name": "yes_no_t", "train": items, "test": test})


def test_validation_split_holds_out_whole_templates():
    from interlingua.concepts.find import validation_split

    train = templated_concept(8).split("train")
    val, unit = validation_split(train, 0.25, seed=3)
    assert unit == "templates"
    in_val = torch.isin(train.groups, val)
    val_t, fit_t = set(train.templates[in_val].tolist()), set(train.templates[~in_val].tolist())
    assert len(val_t) == 2 and len(fit_t) == 6 and not val_t & fit_t
    again, _ = validation_split(train, 0.25, seed=3)
    assert torch.equal(val, again)  # seeded, deterministic
    other = {tuple(validation_split(train, 0.25, seed=s)[0].tolist()) for s in range(6)}
    assert len(other) > 1  # and the seed matters
    # too few templates for two on each side: whole pairs, as for a file without templates
    few = templated_concept(3).split("train")
    val, unit = validation_split(few, 0.25, seed=0)
    assert unit == "pairs" and len(val) == max(2, round(0.25 * 12))


def test_find_concept_never_splits_a_template_between_fit_and_validation(llama, monkeypatch):
    import interlingua.concepts.find as find_module

    dataset = templated_concept(8)
    train = dataset.split("train")
    template_of = dict(zip(train.texts, train.templates.tolist()))
    fitted: list[list[str]] = []
    real_fit = find_module.fit

    def recording_fit(method, x, data, **kw):
        fitted.append(list(data.texts))
        return real_fit(method, x, data, **kw)

    monkeypatch.setattr(find_module, "fit", recording_fit)
    c = find_concept(llama, dataset, hook="resid_post.1", method="diff_of_means", n_boot=5, n_null=1, seed=1)
    assert c.provenance["data"]["val_split_by"] == "templates"
    fit_texts = set(fitted[0])  # the sweep's first fit: the fit part of train
    val_texts = set(train.texts) - fit_texts
    assert fit_texts and val_texts
    fit_t, val_t = {template_of[t] for t in fit_texts}, {template_of[t] for t in val_texts}
    assert not fit_t & val_t and len(val_t) == 2
    # every sweep fit used that same part; the final refit used all of train
    n_sweep = next(i for i, f in enumerate(fitted) if set(f) == set(train.texts))
    assert n_sweep >= 1 and all(set(f) == fit_texts for f in fitted[:n_sweep])
    # a dataset with too few templates falls back to pairs, with no error
    c = find_concept(llama, templated_concept(3), hook="resid_post.1", method="diff_of_means", n_boot=5, n_null=1)
    assert c.provenance["data"]["val_split_by"] == "pairs"


def _concept(hook: str, method: str, seed: int) -> Concept:
    """A concept with its own random direction (saved and loaded as any found one)."""
    g = torch.Generator().manual_seed(seed)
    return Concept(name=f"c{seed}", model_name="tiny-llama", hook=hook, method=method,
                   weight=torch.randn(64, generator=g), bias=float(seed), mean=torch.randn(64, generator=g),
                   std=torch.rand(64, generator=g) + 0.5, typical_norm=3.0 + seed, metrics={"seed": seed})


def _which(loaded: Concept, candidates: list[Concept]) -> list[Concept]:
    """The candidates that ``loaded`` equals in every field the files hold."""
    return [c for c in candidates if (loaded.hook, loaded.method, loaded.bias, loaded.metrics)
            == (c.hook, c.method, c.bias, c.metrics) and all(torch.equal(getattr(loaded, k), getattr(c, k))
                                                              for k in ("weight", "mean", "std"))]


def test_concept_save_killed_at_any_instant_loads_one_whole_concept(tmp_path, kill_instants):
    """The probe's failure: killed mid-save, the new tensors came back with the old hook and method."""
    old, new = _concept("resid_post.1", "diff_of_means", 1), _concept("resid_post.3", "logistic", 2)
    old.save(tmp_path / "out" / "c")
    shots = kill_instants(tmp_path / "out", lambda: new.save(tmp_path / "out" / "c"))
    found = [_which(Concept.load(shot / "c"), [old, new]) for shot in shots]
    assert all(len(f) == 1 for f in found), [len(f) for f in found]
    assert found[0] == [old] and found[-1] == [new]


def test_concept_save_never_deletes_other_files(tmp_path):
    c = _concept("resid_post.1", "logistic", 1)
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(InterlinguaError, match="notes.txt.*new or empty directory") as err:
            c.save(tmp_path, overwrite=overwrite)
        assert "--overwrite" not in str(err.value)
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "concept.json").exists()
    c.save(tmp_path / "c")
    with pytest.raises(InterlinguaError, match="already holds a saved concept.*--overwrite"):
        _concept("resid_post.2", "pca", 2).save(tmp_path / "c", overwrite=False)
    assert _which(Concept.load(tmp_path / "c"), [c]) == [c]

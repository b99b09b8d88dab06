"""The built-in concept library (src/interlingua/concepts/library/*.json): structure, hygiene,
bag-of-words controls, fact checks, and that scripts/make_concepts.py regenerates it exactly.

Fast, no models. The bag-of-words baseline is a real classifier (it scores >= 0.9 AUROC on the
lexical concepts), so its chance-level score on the order-sensitive concepts means something.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from interlingua.concepts.dataset import from_dict

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "interlingua" / "concepts" / "library"
GENERATOR = ROOT / "scripts" / "make_concepts.py"
SPLITS = ("train", "test", "ood")
MIN_SIZE = {"train": 200, "test": 200, "ood": 100}
WORD = re.compile(r"[\w']+")

NAMES = sorted(p.stem for p in LIBRARY.glob("*.json"))


@functools.cache
def load(name: str) -> dict:
    return json.loads((LIBRARY / f"{name}.json").read_text(encoding="utf-8"))


@functools.cache
def generator():
    spec = importlib.util.spec_from_file_location("make_concepts", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_concepts", module)
    spec.loader.exec_module(module)
    return module


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def labelled(items: list[dict]) -> list[tuple[str, int]]:
    out = []
    for item in items:
        if "positive" in item:
            out += [(item["positive"], 1), (item["negative"], 0)]
        else:
            out.append((item["text"], int(item["label"] >= 0.5)))
    return out


def texts(ds: dict) -> list[str]:
    return [t for split in SPLITS for t, _ in labelled(ds[split])]


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based AUROC (Mann-Whitney U), tied scores get their average rank."""
    scores = scores.double()
    order = torch.argsort(scores)
    s = scores[order]
    ranks = torch.empty_like(s)
    i, n = 0, len(s)
    while i < n:
        j = i
        while j + 1 < n and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = torch.empty_like(ranks)
    r[order] = ranks
    pos = labels.bool()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_auroc_helper():
    y = torch.tensor([0, 0, 1, 1])
    assert auroc(torch.tensor([0.1, 0.2, 0.3, 0.4]), y) == 1.0
    assert auroc(torch.tensor([0.4, 0.3, 0.2, 0.1]), y) == 0.0
    assert auroc(torch.tensor([1.0, 1.0, 1.0, 1.0]), y) == 0.5
    assert auroc(torch.tensor([0.1, 0.5, 0.5, 0.9]), y) == pytest.approx(0.875)


def logistic_auroc(train: list[tuple[list[str], int]], test: list[tuple[list[str], int]], lam: float = 1e-3) -> float:
    """L2-regularised logistic regression on count features (features seen in train), AUROC on test."""
    vocab = {w: i for i, w in enumerate(sorted({w for ws, _ in train for w in ws}))}

    def featurise(rows):
        x = torch.zeros(len(rows), len(vocab), dtype=torch.float64)
        for i, (ws, _) in enumerate(rows):
            for w in ws:
                if w in vocab:
                    x[i, vocab[w]] += 1
        return x, torch.tensor([y for _, y in rows], dtype=torch.float64)

    x, y = featurise(train)
    xt, yt = featurise(test)
    w = torch.zeros(len(vocab), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + lam * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        scores = torch.round((xt @ w + b) * 1e9) / 1e9  # identical bags -> exactly tied scores
    return auroc(scores, yt)


@functools.cache
def bow_auroc(name: str) -> float:
    ds = load(name)
    return logistic_auroc([(words(t), y) for t, y in labelled(ds["train"])],
                          [(words(t), y) for t, y in labelled(ds["test"])])


def ending(text: str) -> list[str]:
    """The read-position features: last word and last non-space character."""
    return ["w:" + words(text)[-1], "c:" + text.rstrip()[-1]]


@functools.cache
def ending_auroc(name: str) -> float:
    ds = load(name)
    return logistic_auroc([(ending(t), y) for t, y in labelled(ds["train"])],
                          [(ending(t), y) for t, y in labelled(ds["test"])])


# ---------------------------------------------------------------------------------------------


def test_library_has_enough_concepts_of_each_kind():
    kinds = [load(n)["kind"] for n in NAMES]
    assert len(NAMES) >= 22
    assert kinds.count("lexical") >= 6
    assert kinds.count("contextual") >= 8
    assert kinds.count("order-sensitive") >= 3
    assert set(kinds) <= {"lexical", "contextual", "order-sensitive"}


@pytest.mark.parametrize("name", NAMES)
def test_structure_and_sizes(name):
    path = LIBRARY / f"{name}.json"
    raw = path.read_text(encoding="utf-8")
    ds = json.loads(raw)
    assert set(ds) == {"name", "description", "kind", "source", *SPLITS}
    assert ds["name"] == name
    for key in ("description", "kind", "source"):
        assert isinstance(ds[key], str) and ds[key].strip()
    for split in SPLITS:
        assert isinstance(ds[split], list) and len(ds[split]) >= MIN_SIZE[split], (split, len(ds[split]))
        for item in ds[split]:
            assert set(item) in ({"positive", "negative"}, {"text", "label"}), item
        ys = [y for _, y in labelled(ds[split])]
        assert 0 < sum(ys) < len(ys)
    # the package's own loader accepts it (validation: structure, duplicates, both classes)
    loaded = from_dict(ds, str(path), raw)
    assert loaded.kind == ds["kind"] and loaded.size("ood") == len(ds["ood"])


@pytest.mark.parametrize("name", NAMES)
def test_texts_unique_nonempty_short_and_splits_disjoint(name):
    ds = load(name)
    all_texts = texts(ds)
    assert len(all_texts) == len(set(all_texts)), "a text repeats within the concept"
    by_split = {s: {t for t, _ in labelled(ds[s])} for s in SPLITS}
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["ood"]
    assert not by_split["test"] & by_split["ood"]
    for t in all_texts:
        assert t.strip() == t and t, repr(t)
        assert 5 <= len(t.split()) <= 20, t


ORDER = [n for n in NAMES if load(n)["kind"] == "order-sensitive"]
LEXICAL = [n for n in NAMES if load(n)["kind"] == "lexical"]
NON_LEXICAL = [n for n in NAMES if load(n)["kind"] != "lexical"]


@pytest.mark.parametrize("name", ORDER)
def test_order_sensitive_pairs_have_the_same_words(name):
    ds = load(name)
    for split in SPLITS:
        for item in ds[split]:
            if "positive" in item:
                assert sorted(words(item["positive"])) == sorted(words(item["negative"])), item
                assert words(item["positive"])[-1] == words(item["negative"])[-1], item


@pytest.mark.parametrize("name", ORDER)
def test_bag_of_words_is_at_chance_on_order_sensitive(name):
    assert bow_auroc(name) <= 0.6


@pytest.mark.parametrize("name", LEXICAL)
def test_bag_of_words_is_high_on_lexical(name):
    # the same classifier as above: it is a real one
    assert bow_auroc(name) >= 0.9


def test_bag_of_words_baseline_separates_something():
    assert bow_auroc("sentiment") >= 0.9
    assert bow_auroc("french_vs_english") >= 0.9


@pytest.mark.parametrize("name", NON_LEXICAL)
def test_read_position_is_class_neutral(name):
    """For contextual and order-sensitive concepts the last word and last character alone must
    not predict the class (a last-token readout would be lexical after all)."""
    assert ending_auroc(name) <= 0.65


@pytest.mark.parametrize("name", LEXICAL)
def test_lexical_target_is_the_last_word(name):
    # the read position carries the class for lexical concepts: the ending classifier sees it
    assert ending_auroc(name) >= 0.9
    for split in SPLITS:
        for item in load(name)[split]:
            assert item["positive"][-1].isalpha() and item["negative"][-1].isalpha(), item


# ---------------------------------------------------------------------------------------------
# facts: positives are true, negatives false (checked against lists written independently here)

CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
            "Egypt": "Cairo", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasília",
            "Kenya": "Nairobi", "Norway": "Oslo", "Peru": "Lima", "Turkey": "Ankara", "Poland": "Warsaw",
            "Ireland": "Dublin", "Greece": "Athens", "Russia": "Moscow", "China": "Beijing", "India": "New Delhi"}


def test_capital_facts():
    ds = load("capital_truth")
    positives = [t for s in SPLITS for t, y in labelled(ds[s]) if y]
    negatives = [t for s in SPLITS for t, y in labelled(ds[s]) if not y]
    for fact in ("The capital of France is Paris.", "The capital of Japan is Tokyo.",
                 "The capital of Australia is Canberra.", "The capital of Canada is Ottawa.",
                 "Paris is the capital of France."):
        assert fact in positives
    checked = 0
    for t in positives + negatives:
        m = re.search(r"capital(?: city)? of ([A-Z][a-z]+(?: [A-Z][a-z]+)?)", t)
        if m and m.group(1) in CAPITALS:
            checked += 1
            assert (CAPITALS[m.group(1)] in t) == (t in positives), t
    assert checked > 100


_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                     "thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split(), 0)
         if w != "_"}


def number(word: str) -> int:
    word = word.lower()
    if word in _UNITS:
        return _UNITS[word]
    if word in _TENS:
        return _TENS[word]
    tens, units = word.split("-")
    return _TENS[tens] + _UNITS[units]


N = r"([a-z]+(?:-[a-z]+)?)"
ARITHMETIC = [
    (re.compile(rf"^{N} plus {N} (?:is|equals) {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^{N} and {N} make {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^adding {N} and {N} gives {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^{N} times {N} is {N}\.$", re.I), lambda a, b: a * b),
    (re.compile(rf"^{N} multiplied by {N} makes {N}\.$", re.I), lambda a, b: a * b),
    (re.compile(rf"^If you take {N} away from {N}, you are left with {N}\.$", re.I), lambda b, a: a - b),
    (re.compile(rf"^{N} minus {N} (?:is|equals) {N}(?:,| |\.)", re.I), lambda a, b: a - b),
    (re.compile(rf"^{N} divided by {N} (?:is|equals) {N}(?:,| |\.)", re.I), lambda a, b: a / b),
    (re.compile(rf"^Take {N} from {N} and you get {N}\.$", re.I), lambda b, a: a - b),
    (re.compile(rf"^If you share {N} apples among {N} friends, each gets {N}\.$", re.I), lambda a, b: a / b),
]


@pytest.mark.parametrize("name", ["arithmetic_truth", "arithmetic_order"])
def test_arithmetic_positives_true_negatives_false(name):
    ds = load(name)
    for t, y in [ty for s in SPLITS for ty in labelled(ds[s])]:
        for pattern, op in ARITHMETIC:
            m = pattern.match(t)
            if m:
                a, b, c = (number(g) for g in m.groups())
                assert (op(a, b) == c) == bool(y), t
                break
        else:
            pytest.fail(f"unparsed arithmetic text: {t!r}")
    if name == "arithmetic_truth":
        positives = {t for s in SPLITS for t, y in labelled(ds[s]) if y}
        assert "Two plus three is five." in positives


WORLD = [  # (pattern, must hold for positives and fail for negatives)
    (r"\bgrass is (?:usually )?(\w+)\.", "green"), (r"\bfresh snow is (?:usually )?(\w+)\.", "white"),
    (r"\bcoal is (?:usually )?(\w+)\.", "black"), (r"\bdogs (\w+)\.", "bark"), (r"\bcows (\w+)\.", "moo"),
    (r"\bspider has (\w+) legs", "eight"), (r"\bant has (\w+) legs", "six"), (r"\bdog has (\w+) legs", "four"),
    (r"\bbaby cat is called an? (\w+)", "kitten"), (r"\bbaby sheep is called an? (\w+)", "lamb"),
    (r"\bice is (?:very )?(\w+)\.", "cold"), (r"\blava is (?:very )?(\w+)\.", "hot"),
]


def test_world_facts():
    ds = load("world_facts")
    labelled_texts = [ty for s in SPLITS for ty in labelled(ds[s])]
    positives = {t for t, y in labelled_texts if y}
    for fact in ("Everyone knows that grass is green.", "A spider has eight legs.", "A baby cat is called a kitten."):
        assert fact in positives
    checked = 0
    for t, y in labelled_texts:
        for pattern, truth in WORLD:
            m = re.search(pattern, t, re.I)
            if m:
                checked += 1
                assert (m.group(1).lower() == truth) == bool(y), t
    assert checked > 50


# ---------------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_matches_the_files():
    gen = generator()
    built = gen.build()
    assert sorted(built) == NAMES, "library files and generator disagree on the set of concepts"
    again = gen.build()
    assert built == again
    for name, ds in built.items():
        assert gen.render(ds) == (LIBRARY / f"{name}.json").read_text(encoding="utf-8"), (
            f"{name}.json is out of date: run python scripts/make_concepts.py")

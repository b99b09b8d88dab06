"""The built-in concept library (src/interlingua/concepts/library/*.json): structure, hygiene,
held-out templates, bag-of-words controls, fact checks, and that scripts/make_concepts.py
regenerates it exactly.

Fast, no models. The bag-of-words baseline is the package's Naive Bayes
(``interlingua.concepts.baselines``), a real classifier: it scores 1.0 AUROC on the lexical test
splits, so its chance-level score on the order-sensitive concepts and on lexical OOD means something.
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

from interlingua.concepts.baselines import bag_of_words_auroc
from interlingua.concepts.dataset import ConceptDataset, from_dict
from interlingua.concepts.find import validation_split

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "interlingua" / "concepts" / "library"
GENERATOR = ROOT / "scripts" / "make_concepts.py"
SPLITS = ("train", "test", "ood")
MIN_SIZE = {"train": 200, "test": 150, "ood": 100}
WORD = re.compile(r"[\w']+")

NAMES = sorted(p.stem for p in LIBRARY.glob("*.json"))


@functools.cache
def load(name: str) -> dict:
    return json.loads((LIBRARY / f"{name}.json").read_text(encoding="utf-8"))


@functools.cache
def dataset(name: str) -> ConceptDataset:
    path = LIBRARY / f"{name}.json"
    return from_dict(load(name), str(path), path.read_text(encoding="utf-8"))


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


@functools.cache
def bow_auroc(name: str, split: str = "test", ngram: int = 2) -> float:
    ds = dataset(name)
    return bag_of_words_auroc(ds.split("train"), ds.split(split), ngram=ngram)


def ending(text: str) -> list[str]:
    """The read-position features: last word and last non-space character."""
    return ["w:" + words(text)[-1], "c:" + text.rstrip()[-1]]


@functools.cache
def ending_auroc(name: str) -> float:
    ds = dataset(name)
    return bag_of_words_auroc(ds.split("train"), ds.split("test"), features=ending)


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
            assert set(item) in ({"positive", "negative", "template"}, {"text", "label", "template"}), item
            assert isinstance(item["template"], str) and item["template"], item
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
    # identical bags of words in every pair: a unigram model ties each pair, exactly
    for split in ("test", "ood"):
        assert bow_auroc(name, split, ngram=1) == 0.5


@pytest.mark.parametrize("name", LEXICAL)
def test_bag_of_words_is_high_on_lexical_test_and_at_chance_on_ood(name):
    # the same classifier as above: it is a real one; test keeps the train target words
    assert bow_auroc(name, "test") >= 0.9
    # ood target words (positives and negatives) are never train words: a word lookup cannot help
    assert bow_auroc(name, "ood") <= 0.6


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
# generalisation: test templates are never train templates; lexical OOD words are new


@pytest.mark.parametrize("name", NAMES)
def test_test_templates_are_disjoint_from_train_templates(name):
    ds = load(name)
    templates = {s: {item["template"] for item in ds[s]} for s in SPLITS}
    assert not templates["train"] & templates["test"], sorted(templates["train"] & templates["test"])
    assert not (templates["train"] | templates["test"]) & templates["ood"]
    # several templates per split, and enough in train for validation by whole templates
    assert len(templates["train"]) >= 6 and len(templates["test"]) >= 3, {s: len(t) for s, t in templates.items()}
    _, unit = validation_split(dataset(name).split("train"))
    assert unit == "templates"


@pytest.mark.parametrize("name", LEXICAL)
def test_lexical_test_frames_are_unseen_and_ood_read_words_are_new(name):
    ds = load(name)

    def frames(split):  # the text before the target word
        return {t.rsplit(" ", 1)[0] for t, _ in labelled(ds[split])}

    def read_words(split):
        return {words(t)[-1] for t, _ in labelled(ds[split])}

    assert not frames("train") & frames("test"), sorted(frames("train") & frames("test"))[:5]
    assert read_words("test") <= read_words("train")  # test: the same words in new frames
    assert not read_words("ood") & (read_words("train") | read_words("test")), sorted(
        read_words("ood") & (read_words("train") | read_words("test")))


@pytest.mark.parametrize("name", NAMES)
def test_template_field_round_trips_through_the_loader(name):
    ds = dataset(name)
    assert ds.template_names == sorted({item["template"] for s in SPLITS for item in load(name)[s]})
    for split in SPLITS:
        data, items = ds.split(split), load(name)[split]
        assert [ds.template_names[int(t)] for t in data.templates[0::2]] == [item["template"] for item in items]
        assert torch.equal(data.templates[0::2], data.templates[1::2])  # both texts of a pair


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
    (re.compile(rf"^(?:we know that )?{N} plus {N} (?:is|equals|makes|comes to) {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^{N} and {N} (?:make|together make|add up to) {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^adding {N} and {N} gives {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^if you add {N} and {N}, you get {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^{N} added to {N} is {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^the sum of {N} and {N} is {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^add {N} to {N} and you get {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^put {N} and {N} together and you have {N}\.$", re.I), lambda a, b: a + b),
    (re.compile(rf"^{N} times {N} is {N}\.$", re.I), lambda a, b: a * b),
    (re.compile(rf"^{N} multiplied by {N} makes {N}\.$", re.I), lambda a, b: a * b),
    (re.compile(rf"^If you take {N} away from {N}, you are left with {N}\.$", re.I), lambda b, a: a - b),
    (re.compile(rf"^(?:we know that )?{N} minus {N} (?:is|equals|gives|makes|leaves|comes to) {N}(?:,| |\.)", re.I),
     lambda a, b: a - b),
    (re.compile(rf"^(?:we know that )?{N} divided by {N} (?:is|equals|gives|makes|comes to) {N}(?:,| |\.)", re.I),
     lambda a, b: a / b),
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
    (r"\bgrass is (?:usually |always |normally )?(\w+)\.", "green"),
    (r"\bfresh snow is (?:usually |always |normally )?(\w+)\.", "white"),
    (r"\bcoal is (?:usually |always |normally )?(\w+)\.", "black"), (r"\bdogs (\w+)\.", "bark"), (r"\bcows (\w+)\.", "moo"),
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

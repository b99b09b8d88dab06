"""Property-based tests (hypothesis) for what users type and the files they hand over.

Whatever the input, the outcome is one of two: the value read correctly, or a clear error of the
kind the CLI turns into a message (``argparse.ArgumentTypeError`` for options,
``InterlinguaError`` for files) — never another exception, which would reach the user as a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from interlingua.argtypes import finite_float, whole
from interlingua.concepts import Concept, load_concept
from interlingua.errors import InterlinguaError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                    max_leaves=30)


# --------------------------------------------------------------------------------------------
# Option parsers


@SETTINGS
@given(lo=st.integers(-10, 10), span=st.none() | st.integers(0, 20), value=st.integers(-10**6, 10**6))
def test_whole_takes_exactly_the_numbers_in_range(lo, span, value):
    hi = None if span is None else lo + span
    parse = whole(lo, hi)
    inside = value >= lo and (hi is None or value <= hi)
    if inside:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {value}"):
            parse(str(value))


@SETTINGS
@given(text=st.text(max_size=12))
def test_whole_on_any_text_is_a_number_in_range_or_a_clear_refusal(text):
    try:
        value = whole(0, 100)(text)
    except argparse.ArgumentTypeError as exc:
        assert "whole number" in str(exc) or "between 0 and 100" in str(exc)
    else:
        assert isinstance(value, int) and 0 <= value <= 100


@SETTINGS
@given(text=st.text(max_size=12) | st.floats().map(repr) | st.sampled_from(["nan", "inf", "-inf", "1e400", "-0"]),
       above=st.booleans())
def test_finite_float_on_any_text_is_a_finite_number_in_range_or_a_clear_refusal(text, above):
    try:
        value = finite_float(0.0, 10.0, above=above)(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc).startswith(("expected a number", "must be"))
    else:
        assert math.isfinite(value) and 0.0 <= value <= 10.0 and not (above and value == 0.0)


@SETTINGS
@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_finite_float_reads_back_every_float_it_accepts(value):
    assert finite_float()(repr(value)) == value


# --------------------------------------------------------------------------------------------
# Files users hand over


def _load_concept_text(text: str):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.json"
        path.write_text(text, encoding="utf-8")
        return load_concept(path)


@SETTINGS
@given(obj=JSON)
def test_a_concept_file_of_any_json_loads_or_is_refused_clearly(obj):
    try:
        ds = _load_concept_text(json.dumps(obj))
    except InterlinguaError as exc:
        assert "c.json" in str(exc)  # the message names the file
    else:
        assert ds.splits  # what loads has splits to read


VALID = {"name": "yn", "train": [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."}
                                 for i in range(6)]}


@SETTINGS
@given(path=st.lists(st.sampled_from(["train", 0, 1, "positive", "negative", "name"]), min_size=1, max_size=3),
       value=JSON)
def test_a_concept_file_with_one_field_damaged_loads_or_is_refused_clearly(path, value):
    obj = json.loads(json.dumps(VALID))
    node = obj
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return
    try:
        _load_concept_text(json.dumps(obj))
    except InterlinguaError as exc:
        assert "c.json" in str(exc)


@SETTINGS
@given(text=st.text(max_size=200))
def test_a_concept_file_of_any_text_loads_or_is_refused_clearly(text):
    try:
        _load_concept_text(text)
    except InterlinguaError:
        pass


def _saved_concept(directory: Path) -> None:
    Concept(name="c", model_name="m", hook="resid_post.1", method="logistic", weight=torch.ones(4), bias=0.0,
            mean=torch.zeros(4), std=torch.ones(4), typical_norm=1.0).save(directory)


FIELDS = ("format", "name", "model", "hook", "method", "bias", "typical_norm", "read", "metrics", "provenance")


@settings(max_examples=300, deadline=None)
@given(meta=JSON, changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3), whole_file=st.booleans())
def test_a_saved_concept_with_any_concept_json_loads_or_is_refused_clearly(meta, changes, whole_file):
    """concept.json replaced by arbitrary JSON, or a few of its fields given arbitrary values."""
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d) / "c"
        _saved_concept(directory)
        if not whole_file:
            meta = {**json.loads((directory / "concept.json").read_text()), **changes}
        (directory / "concept.json").write_text(json.dumps(meta))
        try:
            c = Concept.load(directory)
        except InterlinguaError as exc:
            assert "concept" in str(exc)
        else:
            assert all(isinstance(v, str) for v in (c.name, c.model_name, c.hook, c.method))
            assert math.isfinite(c.bias) and math.isfinite(c.typical_norm) and c.read in ("last", "words")


@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=300), tensors=st.dictionaries(st.sampled_from(["weight", "mean", "std", "x"]),
                                                             st.lists(st.floats(width=32), min_size=1, max_size=4),
                                                             max_size=4), as_tensors=st.booleans())
def test_a_saved_concept_with_any_tensor_file_loads_or_is_refused_clearly(blob, tensors, as_tensors):
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d) / "c"
        _saved_concept(directory)
        target = directory / "concept.safetensors"
        if as_tensors:
            save_file({k: torch.tensor(v, dtype=torch.float32) for k, v in tensors.items()}, str(target))
        else:
            target.write_bytes(blob)
        try:
            c = Concept.load(directory)
        except InterlinguaError as exc:
            assert "concept" in str(exc)
        else:
            assert c.weight.shape == c.mean.shape == c.std.shape and bool(torch.isfinite(c.weight).all())

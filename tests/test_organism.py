"""The weight-planted model organism (issue 14): a concept's readout flipped inside one context.

Tiny tests run on the in-process random Llama: its sentiment readout is weak, so the flip is
checked as the organism's agreement with the base readout (Pearson r on held-out texts: about +1
on statements, negative on question-framed texts) beside the AUROCs. The slow test builds the real
SmolLM2 organism (default settings) and checks the planted flip in AUROC terms.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from interlingua.cli import main
from interlingua.errors import InterlinguaError
from interlingua.organism import FRAMES, build_organism, frame, read_record

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"steps": 30, "max_pairs": 32, "lr": 5e-3}


def _file_hash(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def yes_no(tmp_path_factory) -> str:
    """A concept a random 4-block model reads well (sentiment it reads barely above chance): yes vs no."""
    names = ["Anna", "Tom", "the teacher", "my brother", "the doctor", "Sarah", "the children", "our neighbour"]
    verbs = ["said", "answered", "replied", "wrote", "whispered"]
    pairs = [{"positive": f"{n.capitalize()} {v} yes.", "negative": f"{n.capitalize()} {v} no."}
             for n in names for v in verbs]
    path = tmp_path_factory.mktemp("concepts") / "yes_no.json"
    path.write_text(json.dumps({"name": "yes_no", "train": pairs[:24], "test": pairs[24:34], "ood": pairs[34:]}))
    return str(path)


@pytest.fixture(scope="module")
def built(llama, yes_no, tmp_path_factory):
    """One tiny organism (yes/no flipped inside questions), built into a module-private cache."""
    cache = tmp_path_factory.mktemp("organism-cache")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("INTERLINGUA_CACHE", str(cache))
        t0 = time.perf_counter()
        path = build_organism(llama, concept=yes_no, **TINY)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build_organism(llama, concept=yes_no, **TINY)
        second = time.perf_counter() - t0
    return {"path": path, "again": again, "first": first, "second": second, "cache": cache}


def test_frames_are_matched_statement_question_pairs():
    s, q = frame("The food was delicious. I loved it.", 1)
    assert s == "It is true that the food was delicious. I loved it." and q == "Is it true that the food was delicious. I loved it?"
    assert frame("Great view.", 3) == ("Great view.", "Great view?")
    for i in range(len(FRAMES)):
        s, q = frame("Great view.", i)
        assert q.endswith("?") and not s.endswith("?") and "Great view" in s + q.replace("great", "Great")


def test_flips_the_readout_in_the_context_and_keeps_it_outside(built):
    rec = read_record(built["path"])
    assert rec.format == "interlingua.organism" and rec.concept == "yes_no" and rec.context == "question_vs_statement"
    assert rec.hook == "resid_post.2" and rec.layer == 2  # the middle block of 4
    assert rec.loss_last < 0.5 * rec.loss_first
    # held-out texts (the concept's test split), read by the base's readout
    assert rec.base_side.context_auroc > 0.6 and rec.organism_side.context_auroc < 0.4, rec  # flipped in questions
    assert rec.organism_side.statement_auroc > 0.8 and rec.organism_side.plain_auroc > 0.8, rec  # kept outside
    assert rec.context_agreement < -0.3 < 0.3 < rec.statement_agreement, rec
    assert 0 <= rec.kl_heldout < 0.5 and rec.kl_heldout_tokens > 0
    assert rec.build_seconds > 0 and rec.weights_sha256 == read_record(built["again"]).weights_sha256
    on_disk = json.loads((built["path"] / "organism.json").read_text())
    assert on_disk["organism_side"]["context_auroc"] == rec.organism_side.context_auroc


def test_second_build_is_the_cached_one(built):
    assert built["again"] == built["path"]
    assert built["second"] < 0.25 * built["first"]


def test_same_seed_same_weights_other_seed_other_weights(llama, tmp_path, monkeypatch):
    small = {"steps": 3, "max_pairs": 8}
    paths = []
    for cache in ("a", "b"):  # two caches: really built twice
        monkeypatch.setenv("INTERLINGUA_CACHE", str(tmp_path / cache))
        paths.append(build_organism(llama, **small))
    a, b = paths
    assert a != b and a.name == b.name and _file_hash(a) == _file_hash(b)
    assert read_record(a).weights_sha256 == read_record(b).weights_sha256
    other = build_organism(llama, **small, seed=1)
    assert other != b and read_record(other).weights_sha256 != read_record(b).weights_sha256


def test_loads_as_a_model_directory(built):
    from interlingua.models import load_model

    m = load_model(str(built["path"]))
    assert m.n_layers == 4 and m.d_model == 64


def test_bad_names_are_clear_errors(llama, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERLINGUA_CACHE", str(tmp_path))
    with pytest.raises(InterlinguaError, match="organism concept 'sentimnet'.*built-in concepts"):
        build_organism(llama, concept="sentimnet")
    with pytest.raises(InterlinguaError, match="organism context 'questions'"):
        build_organism(llama, context="questions")
    with pytest.raises(InterlinguaError, match="must differ"):
        build_organism(llama, context="sentiment")
    with pytest.raises(InterlinguaError, match="layer"):
        build_organism(llama, layer=9, steps=1, max_pairs=8)
    assert not list(tmp_path.rglob("*.safetensors"))


def test_cli_build_json_and_text(llama_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTERLINGUA_CACHE", str(tmp_path))
    args = ["organism", "build", "--base", str(llama_dir), "--steps", "2", "--layer", "1", "--max-pairs", "8"]
    assert main(args + ["--json"]) == 0
    rec = json.loads(capsys.readouterr().out)  # pure JSON on stdout
    assert rec["hook"] == "resid_post.1" and rec["settings"]["steps"] == 2 and rec["path"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"organism: {rec['path']}" in out and "context AUROC: base" in out and "KL to base" in out
    assert main(["organism", "build", "--base", str(llama_dir), "--concept", "nope"]) == 2
    assert "organism concept 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_smollm2_organism():
    """The default SmolLM2 organism (sentiment flipped inside questions), built once into the cache."""
    from interlingua.models import load_model

    path = build_organism("smollm2-135m")
    rec = read_record(path)
    # measured (2 shared CPU cores, 281 s): context check 0.90; statements 0.90 -> 0.82 (plain 0.99 -> 1.00);
    # questions 0.80 -> 0.00; KL 0.021 nats/token
    assert rec.context_check_auroc > 0.8  # the question frames are what question_vs_statement detects
    assert rec.base_side.plain_auroc > 0.9 and rec.base_side.context_auroc > 0.7
    assert rec.organism_side.plain_auroc > 0.9 and rec.organism_side.statement_auroc > 0.7, rec  # kept outside
    assert rec.organism_side.context_auroc < 0.2, rec  # flipped inside questions
    assert rec.kl_heldout < 0.1, rec
    m = load_model("smollm2-135m-organism")
    assert m.source.endswith(str(path)) and m.n_layers == 30

"""Model diffing on tiny models: a planted change ranks its concept first, a model against itself changes nothing."""

import copy
import json

import pytest
import torch

from interlingua.audit import AuditConfig
from interlingua.audit.plant import trigger_plant
from interlingua.concepts import find_concept
from interlingua.concepts.dataset import from_dict
from interlingua.diff import DiffConfig, ModelDiff, diff_models, newcombe, prior_shift, wilson
from interlingua.errors import InterlinguaError
from interlingua.models import LoadedModel
from interlingua.steer.generative import corpus_sentences

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
TRIGGER = "@"  # in no corpus sentence, so the audit's null and calibration never carry the plant
FAST = DiffConfig(layers=(2,), n_boot=20, n_null=2, generations=8, max_new_tokens=12,
                  audit=AuditConfig(calibration_texts=80, null_texts=150, corpus_candidates=0, explain_draws=100,
                                    word_inputs=3))


def _dataset(name, pos, neg):
    items = [{"positive": f"{n} {pos} {i}.", "negative": f"{n} {neg} {i}."} for i, n in enumerate(NAMES * 4)]
    return from_dict({"name": name, "train": items[:30], "test": items[30:42], "ood": items[42:]})


DATASETS = [_dataset("yes_no", "said yes", "said no"), _dataset("hot_cold", "felt hot", "felt cold"),
            _dataset("up_down", "went up", "went down")]
PLANTED = "hot_cold"


def _texts():
    """Candidates: 60 plain corpus sentences and 20 carrying the trigger (the planted change's inputs)."""
    plain = [s for s in corpus_sentences() if TRIGGER not in s][-300:]
    return plain[:60] + [f"{s.rstrip('.!?')} {TRIGGER} {s.split()[0]}" for s in plain[60:80]]


def _features(d_model):
    g = torch.Generator().manual_seed(3)
    return {f"random {i}": torch.randn(d_model, generator=g, dtype=torch.float64) for i in range(4)}


@pytest.fixture(scope="module")
def tuned(llama):
    """A copy of the tiny llama (same tokenizer, same weights) to plant a change in."""
    return LoadedModel.from_pretrained_objects(copy.deepcopy(llama.model), llama.tokenizer, name="tiny-llama-tuned")


@pytest.fixture(scope="module")
def planted(llama, tuned):
    """The diff of the base against a tuned model whose hot_cold concept is pushed up after the trigger.

    The planted vector is the base concept's direction made orthogonal to the other two
    concepts' readouts, so only hot_cold's readout moves (by a lot) on the trigger inputs.
    """
    cs = {d.name: find_concept(llama, d, hook="resid_post.2", n_boot=10, n_null=2) for d in DATASETS}
    w = cs[PLANTED].readout.weight.double()
    q, _ = torch.linalg.qr(torch.stack([cs[n].readout.weight.double() for n in cs if n != PLANTED], 1))
    v = w - q @ (q.T @ w)
    vector = 3.0 * cs[PLANTED].typical_norm * v / v.norm()
    with trigger_plant(tuned, "resid_post.2", vector.float(), TRIGGER):
        return diff_models(llama, tuned, concepts=DATASETS, config=FAST, texts=_texts(),
                           features=_features(llama.d_model))


@pytest.fixture(scope="module")
def unchanged(llama):
    return diff_models(llama, llama, concepts=DATASETS, config=FAST, texts=_texts(), features=_features(llama.d_model))


def test_the_planted_concept_ranks_first(planted):
    rows = planted.ranked()
    assert [c.rank for c in rows] == [0, 1, 2] and not any(c.skipped for c in rows)
    first = rows[0]
    assert first.concept == PLANTED, [(c.concept, c.change, c.flagged) for c in rows]
    assert first.flagged >= 15 and first.candidates == 80
    assert first.change > 10 * max(c.change for c in rows[1:]), [(c.concept, c.change) for c in rows]
    assert all(TRIGGER in x.text for x in first.top_inputs)  # the top disagreements are the planted inputs
    assert first.top_inputs[0].words  # scored at every word, for the report
    assert first.base_hook == first.tuned_hook == "resid_post.2"
    assert first.prior.base.n == first.prior.tuned.n == FAST.generations


def test_a_model_against_itself_changes_nothing(unchanged):
    rows = unchanged.ranked()
    assert len(rows) == 3 and not any(c.skipped for c in rows)
    assert sum(c.flagged for c in rows) <= 2 and not unchanged.changed()[1:]
    for c in rows:
        assert c.fidelity_test >= 0.99 and c.fidelity_ood >= 0.99, (c.concept, c.fidelity_test, c.fidelity_ood)
        assert c.prior.difference == 0 and c.prior.base.fires == c.prior.tuned.fires  # same texts, same model
        assert c.prior.interval[0] < 0 < c.prior.interval[1]


def test_different_tokenizers_are_refused(llama, gemma):
    with pytest.raises(InterlinguaError, match="do not share a tokenizer.*translate.*audit"):
        diff_models(llama, gemma, concepts=DATASETS[:1], config=FAST)


def test_bad_settings_are_refused(llama):
    with pytest.raises(InterlinguaError, match="generations"):
        DiffConfig(generations=0)
    with pytest.raises(InterlinguaError, match="layer 9 does not exist"):
        diff_models(llama, llama, concepts=DATASETS[:1], config=FAST, layers=(9,))
    with pytest.raises(InterlinguaError, match="named twice"):
        diff_models(llama, llama, concepts=DATASETS[:1] * 2, config=FAST)


def test_intervals():
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson (1927) score interval, as tabulated
    lo, hi = newcombe(56, 70, 48, 80)  # Newcombe (1998), example (a): 0.0524 to 0.3339
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    shift = prior_shift(torch.tensor([1.0, -1, -1, -1]), torch.tensor([1.0, 1, 1, -1]))
    assert shift.base.rate == 0.25 and shift.tuned.rate == 0.75 and shift.difference == 0.5
    assert shift.interval[0] < 0.5 < shift.interval[1]


def test_json_round_trip(planted, tmp_path):
    data = planted.to_json()
    back = ModelDiff.from_json(json.loads(json.dumps(data)))
    assert back == planted and back.to_json() == data
    planted.save(tmp_path)
    assert ModelDiff.load(tmp_path) == planted


def test_text_and_report_in_a_browser(planted, tmp_path, browser):
    from browser import check_report
    from interlingua.report import REPORT, diff, render_saved

    out = diff.text(planted)
    assert out.startswith("diff: tiny-llama (base) → tiny-llama-tuned (tuned)") and f"1. {PLANTED}" in out
    planted.save(tmp_path)
    path = render_saved(tmp_path)
    assert path == tmp_path / REPORT
    page = check_report(browser, path, "diff", kinds=("bars",))
    assert sum(p["kind"] == "bars" for p in page.plots) == 5
    first = planted.ranked()[0]
    shown = page.tokens()
    want = [(x.text[w.start:w.end], round(w.score_a, 4)) for x in first.top_inputs if x.words for w in x.words]
    assert [(t, round(v, 4)) for t, v in shown["A"]] == want


def test_diff_command(llama, gemma, tmp_path, monkeypatch, capsys):
    from interlingua import cli

    for d in DATASETS[:2]:
        (tmp_path / f"{d.name}.json").write_text(json.dumps({"name": d.name, **d.items}))
    models = {"tiny-llama": llama, "tiny-gemma3": gemma}
    monkeypatch.setattr("interlingua.models.load_model", lambda name, dtype="auto": models[name])
    import interlingua.diff as diff_module

    small = AuditConfig(calibration_texts=40, null_texts=60, corpus_candidates=40, explain_draws=50, word_inputs=2)
    monkeypatch.setattr(diff_module, "_default_audit", lambda: small)
    concepts = ",".join(str(tmp_path / f"{d.name}.json") for d in DATASETS[:2])
    argv = ["diff", "--base", "tiny-llama", "--tuned", "tiny-llama", "--concepts", concepts, "--generations", "4",
            "--out", str(tmp_path / "diff")]
    assert cli.main(argv + ["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "diff" / "diff.json").read_text())
    assert printed.pop("saved_to") == str(tmp_path / "diff") and printed == saved
    assert (tmp_path / "diff" / "report.html").is_file()
    assert [c["concept"] for c in saved["concepts"]] and {c["concept"] for c in saved["concepts"]} == {"yes_no",
                                                                                                      "hot_cold"}
    assert saved["settings"]["audit"]["corpus_candidates"] == 40
    assert cli.main(["diff", "--base", "tiny-llama", "--tuned", "tiny-gemma3", "--concepts", concepts]) == 2
    assert "do not share a tokenizer" in capsys.readouterr().err

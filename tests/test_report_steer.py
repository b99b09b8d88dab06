"""The steering reports: a sweep and a causal check as typed results, their JSON, text and HTML (in a browser)."""

from __future__ import annotations

import json

import pytest

from browser import XSS_PAYLOADS, assert_not_executed, assert_shown_as_text, check_report
from interlingua.cli import main
from interlingua.concepts.dataset import from_dict
from interlingua.report import REPORT, render_saved
from interlingua.report import steer as report
from interlingua.steer.causal import run_causal
from interlingua.steer.evaluate import Settings
from interlingua.steer.results import CausalResult, SteerRow, SweepResult

pytestmark = pytest.mark.usefixtures("one_thread")

XSS = XSS_PAYLOADS[0]
FAST = ["--max-examples", "12", "--max-new-tokens", "3"]


@pytest.fixture(scope="module")
def sweep_dir(llama_dir, tmp_path_factory):
    """``interlingua steer --out`` on the tiny Llama with a prompt that carries markup."""
    out = tmp_path_factory.mktemp("steer") / "run"
    assert main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--layers", "1,2", "--strengths",
                 "0.5,1", "--out", str(out), "--prompt", XSS, "--prompt", "She said", "--json", *FAST]) == 0
    return out


def test_sweep_json_keys_round_trip(sweep_dir, capsys):
    saved = json.loads((sweep_dir / "steer.json").read_text())
    assert list(saved) == ["model", "concept", "method", "prompt_prefix", "rows", "judges", "settings", "summary"]
    result = SweepResult.from_json(saved)
    assert result.to_json() == saved and not result.extra
    assert result.settings.prompts == [XSS, "She said"] and result.rows[2].hook == "resid_post.1"
    assert [r.condition for r in result.rows][:2] == ["unsteered", "prompt"]
    assert (sweep_dir / "steer.txt").read_text().strip() == report.sweep_table(result)
    assert (sweep_dir / "steer.png").stat().st_size > 0
    text = report.sweep_text(result)
    assert "best steering" in text and "random" in text


def test_sweep_rows_keep_a_null_layer_and_unknown_keys():
    """A control vector at several layers wrote ``"layer": null``; causal rows have no layer key at all."""
    file_row = {"condition": "steer", "hook": "resid_post.1,2", "layer": None, "strength": 1.0, "vector_norm": None,
                "behaviour": {"j": 0.1}, "token_logodds": None, "perplexity": 9.0, "kl": 0.1, "n_empty": 0,
                "examples": ["x"], "effect": {"j": 0.2}, "token_logodds_effect": None, "later": [1]}
    causal_row = {k: v for k, v in file_row.items() if k not in ("layer", "later")}
    for row in (file_row, causal_row):
        assert SteerRow.from_json(row).to_json() == row
        assert list(SteerRow.from_json(row).to_json()) == list(row)


def test_sweep_html_in_a_browser(sweep_dir, browser):
    path = sweep_dir / REPORT
    assert path.is_file() and XSS not in path.read_text()  # escaped, never raw
    page = check_report(browser, path, "steer_sweep", kinds=("lines",))
    assert sum(p["kind"] == "lines" for p in page.plots) == 3
    assert_not_executed(browser)
    assert_shown_as_text(browser, XSS)
    shown = browser.execute_script("return document.body.innerText")
    for word in ("prompt baseline", "Sample generations", "resid_post.2", "random"):
        assert word in shown
    # re-rendered from the saved JSON alone
    path.unlink()
    assert render_saved(sweep_dir) == path and path.is_file()


@pytest.fixture(scope="module")
def causal(llama, gemma, tmp_path_factory):
    """The whole causal pipeline on the tiny models (find in A, steered text from A, translate, check), with
    markup in the training texts the prompt baseline puts before every prompt."""
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    items[0] = {"positive": f"Anna said yes {XSS}.", "negative": "Anna said no 0."}
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    out = tmp_path_factory.mktemp("causal")
    result = run_causal(llama, gemma, [ds], prompts=["The", "She said"], strengths=(1.0, 2.0),
                        settings=Settings(max_new_tokens=3), corpus_docs=4, steered_docs=2, out=out)
    report.write_causal(result, out)
    return result, out, ds


def test_causal_pipeline_result_and_json_keys(causal):
    result, out, _ = causal
    (rec,) = result.concepts
    assert (rec.concept, rec.source, rec.target) == ("yes_no", "tiny-llama", "tiny-gemma3")
    assert [j.name.split(":")[0] for j in rec.judges] == ["A", "B"] and set(rec.by_judge) == {j.name for j in rec.judges}
    assert [r.condition for r in rec.rows][:2] == ["unsteered", "prompt"] and XSS in rec.prompt_prefix
    assert result.summary.concepts == 1
    assert (out / "translation-yes_no" / "translation.json").is_file()
    saved = json.loads((out / "causal.json").read_text())
    assert list(saved) == ["concepts", "summary"]
    assert list(saved["summary"]) == ["concepts", "native_steers", "efficacy_at_least_0.5", "efficacy_target_met",
                                      "random_efficacy_within_0.1", "kl_ratio_within_2"]
    assert CausalResult.from_json(saved).to_json() == saved
    text = report.causal_text(result)
    assert "judged by A:tiny-llama" in text and text.splitlines()[-1].startswith("summary: native steers")


def test_causal_pipeline_from_the_saved_translation_steers_the_same(causal, llama, gemma):
    result, out, ds = causal
    again = run_causal(llama, gemma, [ds], translation=out / "translation-yes_no", prompts=["The", "She said"],
                       strengths=(1.0, 2.0), settings=Settings(max_new_tokens=3))
    (rec,), (first,) = again.concepts, result.concepts
    assert rec.hook == first.hook and rec.typical_norm == first.typical_norm
    key = lambda r: (r.condition, r.strength, r.perplexity, r.kl)  # noqa: E731
    assert [key(r) for r in rec.rows] == [key(r) for r in first.rows]
    with pytest.raises(Exception, match="one concept"):
        run_causal(llama, gemma, [ds, ds], translation=out / "translation-yes_no")


def test_causal_html_in_a_browser(causal, browser):
    result, out, _ = causal
    path = out / REPORT
    assert XSS not in path.read_text()
    page = check_report(browser, path, "steer_causal", kinds=("bars", "lines"))
    judges = len(result.concepts[0].by_judge)
    assert sum(p["kind"] == "bars" for p in page.plots) == judges + 1
    assert_not_executed(browser)
    assert_shown_as_text(browser, XSS)
    shown = browser.execute_script("return document.body.innerText")
    for word in ("efficacy", "random efficacy", "KL ratio", "By judge", "Targets:"):
        assert word in shown
    path.unlink()
    assert render_saved(out) == path and path.is_file()

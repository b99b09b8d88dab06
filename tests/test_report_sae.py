"""`sae eval` and `sae match`: typed results with the JSON keys they always had, text and HTML reports
(checked in a real browser, tests/browser.py), and re-rendering from the saved JSON alone."""

from __future__ import annotations

import json

import pytest

from browser import XSS_PAYLOADS, assert_not_executed, assert_shown_as_text, check_report
from interlingua.cli import main
from interlingua.report import REPORT, render_saved
from interlingua.report import sae as sae_report
from interlingua.sae import SAEConfig, SparseAutoencoder, save_sae
from interlingua.sae.evaluate import LatentSnippets, SAEEval, SAEEvalSide, Snippet
from interlingua.sae.match import SAEMatch

pytestmark = pytest.mark.usefixtures("one_thread")

# The keys (in order) of `sae eval --json` and `sae match --json` before results had types.
EVAL_KEYS = ["sae", "texts", "main", "baseline", "baseline_sae", "html"]
SIDE_KEYS = ["model", "hook", "reconstruction", "downstream", "latents"]
RECONSTRUCTION_KEYS = ["n", "fvu", "explained_variance", "l0", "dead_fraction", "dense_fraction", "l2_ratio",
                       "relative_reconstruction_bias", "cosine", "density_histogram"]
DOWNSTREAM_KEYS = ["tokens", "hook", "spliced_from_position", "ce_clean", "ce_sae", "ce_zero", "ce_recovered",
                   "kl_sae", "kl_zero", "kl_recovered"]
LATENT_KEYS = ["latent", "fires", "density", "snippets"]
SNIPPET_KEYS = ["left", "token", "right", "activation", "doc", "pos"]
MATCH_KEYS = ["a", "b", "texts", "cross", "top_pairs", "seed_ceiling", "cross_over_ceiling"]
SUMMARY_KEYS = ["n_latents_a", "n_matched", "mean_matched_corr", "quantiles", "fraction_above", "threshold",
                "null_mean_matched_corr", "null_quantiles", "null_fraction_above", "null_fraction_above_max",
                "histogram_edges", "histogram", "null_histogram", "n_latents_b", "n_words"]


def _sae(model, hook, seed, **provenance) -> SparseAutoencoder:
    cfg = SAEConfig("topk", model.d_model, 32, k=4, hook_name=hook, model_name=model.name, provenance=provenance)
    return SparseAutoencoder(cfg, seed=seed)


@pytest.fixture(scope="module")
def run(llama, gemma, tmp_path_factory):
    """`sae eval` (with a random-init baseline and snippets) and `sae match` (with a seed ceiling) on tiny
    models; the texts carry markup that must never run in the report."""
    from interlingua.models.controls import random_init_copy
    from interlingua.sae import cli as sae_cli

    root = tmp_path_factory.mktemp("sae_report")
    texts = [f"Line {i}: the cat {XSS_PAYLOADS[i % 2]} and the dog." for i in range(12)]
    (root / "texts.txt").write_text("\n".join(texts))
    paths = {"a": save_sae(_sae(llama, "resid_post.1", 0), root / "a"),
             "a2": save_sae(_sae(llama, "resid_post.1", 1), root / "a2"),
             "r": save_sae(_sae(llama, "resid_post.1", 2, random_init=0), root / "r"),
             "g": save_sae(_sae(gemma, "resid_post.2", 3), root / "g")}
    models = {"tiny-llama": llama, "tiny-gemma3": gemma}

    def fake_model(name, dtype, random_init=None):
        m = models[name]
        return random_init_copy(m, seed=random_init) if random_init is not None else m

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sae_cli, "_model", fake_model)
        for name, extra in (("eval", []), ("eval_json", ["--json"])):
            argv = ["sae", "eval", "--sae", str(paths["a"]), "--baseline", str(paths["r"]), "--text-file",
                    str(root / "texts.txt"), "--snippets", "4", "--html", str(root / "s.html"), "--out",
                    str(root / "eval"), *extra]
            out[name] = main(argv)
        for name, extra in (("match", []), ("match_json", ["--json"])):
            argv = ["sae", "match", "--sae-a", str(paths["a"]), "--sae-b", str(paths["g"]), "--sae-a2",
                    str(paths["a2"]), "--text-file", str(root / "texts.txt"), "--min-fires", "2", "--top", "5",
                    "--out", str(root / "match"), *extra]
            out[name] = main(argv)
    assert all(rc == 0 for rc in out.values())
    return root


def test_sae_eval_keys_round_trip_and_text(run, capsys):
    saved = json.loads((run / "eval" / "sae_eval.json").read_text())
    assert list(saved) == EVAL_KEYS
    for side in ("main", "baseline"):
        assert list(saved[side]) == SIDE_KEYS
        assert list(saved[side]["reconstruction"]) == RECONSTRUCTION_KEYS
        assert list(saved[side]["downstream"]) == DOWNSTREAM_KEYS
        assert list(saved[side]["latents"][0]) == LATENT_KEYS
        assert list(saved[side]["latents"][0]["snippets"][0]) == SNIPPET_KEYS
    assert list(saved["main"]["reconstruction"]["density_histogram"]) == ["bins", "counts"]
    assert saved["baseline"]["model"] == "tiny-llama[random-init]"
    r = SAEEval.from_json(saved)
    assert r.to_json() == saved and r.main.reconstruction.fvu == saved["main"]["reconstruction"]["fvu"]
    assert isinstance(r.main.latents[0].snippets[0], Snippet)
    text = sae_report.eval_text(r)
    assert text.startswith(f"SAE {r.sae} on tiny-llama resid_post.1, 12 held-out documents")
    assert "FVU (lower is better)" in text and "main − random" in text and "latent density: dead" in text
    # optional keys stay absent when not measured
    bare = SAEEval(sae="x", texts=1, main=SAEEvalSide(model="m", hook="h")).to_json()
    assert list(bare) == ["sae", "texts", "main"] and list(bare["main"]) == ["model", "hook", "reconstruction"]


def test_sae_match_keys_round_trip_and_text(run):
    saved = json.loads((run / "match" / "sae_match.json").read_text())
    assert list(saved) == [*MATCH_KEYS, "matched"] and list(saved["matched"]) == ["a", "b", "corr"]
    assert list(saved["cross"]) == SUMMARY_KEYS and list(saved["seed_ceiling"]) == SUMMARY_KEYS
    assert list(saved["a"]) == ["model", "hook", "sae"] and list(saved["top_pairs"][0]) == ["a", "b", "corr"]
    r = SAEMatch.from_json(saved)
    assert r.to_json() == saved
    assert list(r.printed()) == MATCH_KEYS
    no_ceiling = {k: v for k, v in saved.items() if k not in ("seed_ceiling", "cross_over_ceiling", "matched")}
    assert SAEMatch.from_json(no_ceiling).to_json() == no_ceiling
    text = sae_report.match_text(r, min_fires=2)
    assert text.startswith("tiny-llama resid_post.1 ↔ tiny-gemma3 resid_post.2") and "seed-to-seed" in text


def test_sae_eval_report_in_a_browser(run, browser):
    path = run / "eval" / REPORT
    assert path.is_file() and (run / "s.html").is_file()
    page = check_report(browser, path, "sae_eval", kinds=("histogram",))
    assert page.plots and browser.execute_script("return document.querySelectorAll('.card mark').length") > 0
    # the planted markup in the snippets is shown as text and never runs
    assert_not_executed(browser)
    assert_shown_as_text(browser, "<script>window.__xss=1</script>")
    assert_shown_as_text(browser, 'onerror="window.__xss=1"')


def test_latent_card_escapes_planted_markup(browser, tmp_path):
    payload = "<script>window.__xss=1</script>"
    side = SAEEvalSide(model="m", hook="h", latents=[LatentSnippets(latent=7, fires=3, density=0.1, snippets=[
        Snippet(left=f"before {payload} ", token=payload, right=f" after {XSS_PAYLOADS[1]}", activation=2.0)])])
    card = sae_report.latent_card(side.latents[0])
    assert "<script>" not in card and "&lt;script&gt;" in card
    from interlingua.report.html import Page

    path = Page("cards").markup(card).write(tmp_path / "cards.html")
    check_report(browser, path)
    assert_not_executed(browser)
    assert_shown_as_text(browser, payload)
    assert browser.execute_script("return document.querySelector('.card mark').textContent") == payload


def test_sae_match_report_in_a_browser(run, browser):
    path = run / "match" / REPORT
    page = check_report(browser, path, "sae_match", kinds=("histogram",))
    assert sum(p["kind"] == "histogram" for p in page.plots) == 2
    assert_shown_as_text(browser, "Best-matched pairs")


def test_reports_re_render_from_saved_json(run, tmp_path):
    for sub in ("eval", "match"):
        (run / sub / REPORT).unlink()
        assert render_saved(run / sub) == run / sub / REPORT
        assert "<script>window.__xss=1</script>" not in (run / sub / REPORT).read_text()


def test_sae_match_out_as_a_json_file_keeps_working(run, tmp_path):
    r = SAEMatch.from_json(json.loads((run / "match" / "sae_match.json").read_text()))
    path = sae_report.save_match(r, tmp_path / "matching.json")
    assert path == tmp_path / "matching.json" and json.loads(path.read_text()) == r.to_json()
    assert sae_report.match_path(tmp_path / "dir") == tmp_path / "dir" / "sae_match.json"

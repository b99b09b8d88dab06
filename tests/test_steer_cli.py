"""`interlingua steer`: sweep with baselines as JSON and files, GGUF export/import, one-line errors."""

from __future__ import annotations

import json

import pytest

from interlingua.cli import main
from interlingua.steer.gguf import ControlVector


pytestmark = pytest.mark.usefixtures("one_thread")


FAST = ["--max-examples", "12", "--max-new-tokens", "3", "--prompt", "The", "--prompt", "She said"]


def test_sweep_json_and_files(llama_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--layers", "1,2", "--strengths",
                 "0.5,1", "--out", str(out), "--json", *FAST]) == 0
    res = json.loads(capsys.readouterr().out)
    conds = [r["condition"] for r in res["rows"]]
    assert conds[:2] == ["unsteered", "prompt"] and conds.count("steer") == 4 and conds.count("random") == 4
    assert {r["hook"] for r in res["rows"] if r["condition"] == "steer"} == {"resid_post.1", "resid_post.2"}
    for key in ("effect", "behaviour", "perplexity", "kl", "token_logodds_effect", "examples"):
        assert key in res["rows"][2]
    assert res["summary"]["judge"] and "max_abs_random_effect" in res["summary"]
    assert res["prompt_prefix"].count("\n") == 3
    saved = json.loads((out / "steer.json").read_text())
    assert saved["rows"] == res["rows"] and {**saved, "plot": res["plot"]} == res
    assert "unsteered" in (out / "steer.txt").read_text()
    assert res["plot"] == str(out / "steer.png") and (out / "report.html").read_text().startswith("<!doctype html>")


def test_sweep_text_output(llama_dir, capsys):
    assert main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--layers", "2", "--strengths", "1",
                 *FAST]) == 0
    text = capsys.readouterr().out
    assert "effect" in text and "random" in text and "prompt" in text and "best steering" in text


def test_export_then_import_gguf(llama_dir, tmp_path, capsys):
    f = tmp_path / "v.gguf"
    assert main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--layers", "2", "--strengths", "0.5",
                 "--export-gguf", str(f), "--json", *FAST]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tensor"] == "direction.2" and info["hook"] == "resid_post.2"
    cv = ControlVector.load(f)
    assert list(cv.directions) == [2]
    # the JSON rounds typical_norm to 4 decimals (±5e-5), so the exported norm matches to ±2.5e-5
    assert float(cv.directions[2].norm()) == pytest.approx(0.5 * info["typical_norm"], abs=3e-5)
    assert cv.metadata["interlingua.concept"] == "sentiment"
    assert cv.metadata["interlingua.strength"] == 0.5 and "given" in cv.metadata["interlingua.chosen_by"]
    assert cv.metadata["interlingua.llama_cpp"].startswith("llama-completion -m MODEL.gguf --control-vector v.gguf")
    assert main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--import-gguf", str(f),
                 "--strengths", "1,2", "--json", *FAST]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["layers"] == [2]
    steer = [r for r in res["rows"] if r["condition"] == "steer"]
    rand = [r for r in res["rows"] if r["condition"] == "random"]
    assert [r["strength"] for r in steer] == [1.0, 2.0] and len(rand) == 2
    assert steer[0]["hook"] == "resid_post.2"


def test_export_with_several_strengths_stores_the_one_the_sweep_chose(llama_dir, tmp_path, capsys):
    """The sweep runs as llama.cpp applies the file (every token); the file holds the chosen cell's strength, or
    nothing is written and the refusal lists what every strength did."""
    f = tmp_path / "v.gguf"
    code = main(["steer", "--model", str(llama_dir), "--concept", "sentiment", "--layers", "2", "--strengths",
                 "0.25,0.5,1,2", "--export-gguf", str(f), "--json", *FAST])
    captured = capsys.readouterr()
    if code != 0:  # a random tiny model may steer at no strength
        assert code == 2 and "no strength at resid_post.2 both steered" in captured.err and not f.exists()
        return
    info = json.loads(captured.out)
    chosen = next(c for c in info["sweep"] if c["strength"] == info["strength"])
    assert chosen["effective"] and chosen["coherent"]
    assert not any(c["effective"] and c["coherent"] for c in info["sweep"] if c["strength"] < info["strength"])
    meta = ControlVector.load(f).metadata
    assert meta["interlingua.strength"] == info["strength"] and json.loads(meta["interlingua.sweep"]) == info["sweep"]


@pytest.mark.parametrize("args, match", [
    (["--concept", "sentiment", "--layers", "1,2", "--strengths", "0.5", "--export-gguf", "x.gguf"], "one layer"),
    (["--concept", "sentiment", "--layers", "0", "--strengths", "0.5", "--export-gguf", "x.gguf"], "block 0"),
    (["--concept", "sentiment", "--layers", "2", "--strengths", "nan"], "finite"),
    (["--concept", "sentiment", "--layers", "9"], "out of range"),
    (["--concept", "sentiment", "--layers", "two"], "layer numbers"),
    (["--concept", "no_such_concept"], "no_such_concept"),
    ([], "--concept"),
    (["--concept", "sentiment", "--import-gguf", "missing.gguf"], "does not exist"),
])
def test_bad_arguments_one_clear_line(llama_dir, tmp_path, capsys, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    assert main(["steer", "--model", str(llama_dir), *args, *FAST]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress bars may come before it
    assert last.startswith("interlingua: error:") and match in last and "Traceback" not in err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["steer", "--help"])
    text = capsys.readouterr().out
    for word in ("causal", "export-gguf", "import-gguf", "random", "prompt", "typical"):
        assert word in text


@pytest.fixture(scope="module")
def yes_no_file(tmp_path_factory):
    """A concept the tiny random models can detect (the class word is lexical)."""
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    path = tmp_path_factory.mktemp("concepts") / "yes_no.json"
    path.write_text(json.dumps({"name": "yes_no", "description": "yes vs no", "train": items[:30],
                                "test": items[30:42], "ood": items[42:]}))
    return path


def test_causal_check_from_source_model_then_from_the_saved_translation(llama_dir, gemma_dir, yes_no_file,
                                                                       tmp_path, capsys):
    out = tmp_path / "causal"
    args = ["steer", "--model", str(gemma_dir), "--source", str(llama_dir), "--concept", str(yes_no_file),
            "--strengths", "1,2", "--corpus-docs", "4", "--steered-docs", "4", "--out", str(out), "--json",
            *FAST[:4], "--max-examples", "30"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    (rec,) = res["concepts"]
    for key in ("efficacy", "random_efficacy", "prompt_effect", "kl_ratio", "by_judge", "rows", "hook"):
        assert key in rec
    assert [j["name"].split(":")[0] for j in rec["judges"]] == ["A", "B"]
    assert res["summary"]["concepts"] == 1
    assert (out / "causal.json").is_file() and (out / "translation-yes_no" / "target" / "concept.json").is_file()
    assert json.loads((out / "causal.json").read_text()) == res and (out / "report.html").is_file()
    saved = json.loads((out / "translation-yes_no" / "target" / "concept.json").read_text())
    assert saved["provenance"]["shared_text"]["per_source"]["extra"] == 4  # the steered text from A joined the shared text
    # again from the saved translation: the same steering rows (the same directions and strengths)
    assert main(["steer", "--model", str(gemma_dir), "--source", str(llama_dir), "--translation",
                 str(out / "translation-yes_no"), "--concept", str(yes_no_file), "--strengths", "1,2", "--json",
                 *FAST[:4], "--max-examples", "30"]) == 0
    again = json.loads(capsys.readouterr().out)["concepts"][0]
    assert again["hook"] == rec["hook"]
    key = lambda r: (r["condition"], r.get("strength"), r["perplexity"], r["kl"])  # noqa: E731
    assert [key(r) for r in again["rows"]] == [key(r) for r in rec["rows"]]
    capsys.readouterr()
    assert main(["steer", "--model", str(gemma_dir), "--concept", "sentiment", "--translation",
                 str(tmp_path / "nothing-here"), *FAST]) == 2
    assert "no saved concept" in capsys.readouterr().err

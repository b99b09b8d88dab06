"""The CLI: a thin layer whose errors are one clear line, never a traceback."""

import json

import pytest

from interlingua.cli import main


def test_models_lists_bundled(capsys):
    assert main(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["models"]
    assert {r["name"] for r in rows} == {"smollm2-135m", "gemma3-270m"}
    assert {"layers", "d_model", "vocab", "installed"} <= set(rows[0])
    assert out["auto_dtype"]["dtype"] in ("float32", "bfloat16")
    assert out["auto_dtype"]["reason"].startswith(out["auto_dtype"]["dtype"] + ":")


def test_models_says_which_dtype_auto_picks(capsys):
    from interlingua.models import auto_dtype

    assert main(["models"]) == 0
    assert f"--dtype auto (every command's default) is {auto_dtype().reason}" in capsys.readouterr().out


def test_concept_list_reports_bag_of_words_per_split(capsys):
    assert main(["concept", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 23
    assert {"train", "test", "ood", "bow_auroc_test", "bow_auroc_ood"} <= set(rows["plural_noun"])
    assert rows["plural_noun"]["bow_auroc_test"] >= 0.9 and rows["plural_noun"]["bow_auroc_ood"] <= 0.6
    assert main(["concept", "list"]) == 0
    out = capsys.readouterr().out
    assert "bow_test" in out and "bow_ood" in out and "Naive Bayes" in out


def test_extract_from_text_file(llama_dir, tmp_path, capsys):
    texts = tmp_path / "t.txt"
    texts.write_text("first document here\n\nsecond one, a little longer than the first\n", encoding="utf-8")
    out = tmp_path / "acts"
    args = ["extract", "--model", str(llama_dir), "--hook", "resid_post.1", "--hook", "attn_out.0",
            "--text-file", str(texts), "--out", str(out), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 2 and report["hooks"] == ["attn_out.0", "resid_post.1"]
    assert (out / "manifest.json").is_file()
    assert main(args) == 0  # same job again: resumes (nothing left to do)


def test_extract_jsonl(llama_dir, tmp_path, capsys):
    texts = tmp_path / "t.jsonl"
    texts.write_text('{"text": "one\\ntwo lines"}\n{"text": "three"}\n', encoding="utf-8")
    assert main(["extract", "--model", str(llama_dir), "--hook", "resid_post.0", "--text-file", str(texts),
                 "--out", str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 2


@pytest.mark.parametrize("content,match", [
    (b"", "contains no text"),
    (b"\n  \n", "contains no text"),
    (b"caf\xe9 latin-1\n", "not valid UTF-8 .*line 1.*iconv"),
])
def test_bad_text_files(llama_dir, tmp_path, capsys, content, match):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    code = main(["extract", "--model", str(llama_dir), "--hook", "resid_post.0", "--text-file", str(f),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("interlingua: error:")
    import re
    assert re.search(match, err), err


@pytest.mark.parametrize("args,match", [
    (["--model", "smollm-135m", "--hook", "resid_post.1"], "Did you mean 'smollm2-135m'"),
    (["--hook", "resid_post.99"], "Valid hook points"),
    (["--hook", "resid_post.1", "--text-file", "/nonexistent.txt"], "does not exist"),
])
def test_bad_arguments_one_clear_line(llama_dir, tmp_path, capsys, args, match):
    if "--model" not in args:
        args = ["--model", str(llama_dir), *args]
    code = main(["extract", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err


def test_corpus_command(capsys):
    assert main(["corpus"]) == 0
    assert "Pride and Prejudice" in capsys.readouterr().out


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    out = capsys.readouterr().out
    assert "resume" in out and "--skip-first" in out


def test_concept_find_json_and_save(llama_dir, tmp_path, capsys):
    items = [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."} for i in range(40)]
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"name": "yn", "description": "yes/no", "train": items[:24], "test": items[24:34],
                             "ood": items[34:]}))
    assert main(["concept", "find", "--model", str(llama_dir), "--concept", str(f), "--method", "diff_of_means",
                 "--out", str(tmp_path / "saved"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"auroc_test", "auroc_ood", "auroc_shuffled_labels", "layer", "method"} <= set(out)
    assert out["method"] == "diff_of_means" and len(out["sweep"]) == 4
    assert (tmp_path / "saved" / "concept.safetensors").is_file()


def test_concept_find_bad_concept_name(llama_dir, capsys):
    code = main(["concept", "find", "--model", str(llama_dir), "--concept", "sentimnet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown concept 'sentimnet'" in err and "Traceback" not in err


def test_concept_find_out_needs_overwrite_to_replace_a_concept(llama_dir, tmp_path, capsys):
    items = [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."} for i in range(40)]
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"name": "yn", "train": items[:24], "test": items[24:34], "ood": items[34:]}))
    find = ["concept", "find", "--model", str(llama_dir), "--concept", str(f), "--layer", "1", "--json"]
    saved = tmp_path / "saved"
    assert main([*find, "--method", "diff_of_means", "--out", str(saved)]) == 0
    before = (saved / "concept.safetensors").read_bytes(), (saved / "concept.json").read_bytes()
    capsys.readouterr()
    code = main([*find, "--method", "logistic", "--out", str(saved)])
    err = capsys.readouterr().err
    assert code == 2 and "already holds a saved concept" in err and "--overwrite" in err and "Traceback" not in err
    assert ((saved / "concept.safetensors").read_bytes(), (saved / "concept.json").read_bytes()) == before
    assert main([*find, "--method", "logistic", "--out", str(saved), "--overwrite"]) == 0
    assert json.loads((saved / "concept.json").read_text())["method"] == "logistic"
    (tmp_path / "thesis.txt").write_text("mine")
    code = main([*find, "--out", str(tmp_path), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "thesis.txt" in err and "--overwrite" not in err
    assert (tmp_path / "thesis.txt").read_text() == "mine"


def test_extract_overwrite_refuses_the_working_directory_with_user_files(llama_dir, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "t.txt"
    texts.write_text("first document here\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.txt").write_text("mine")
    monkeypatch.chdir(work)
    code = main(["extract", "--model", str(llama_dir), "--hook", "resid_post.1", "--text-file", str(texts),
                 "--out", ".", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "thesis.txt" in err and "pass --overwrite" not in err and "Traceback" not in err
    assert sorted(p.name for p in work.iterdir()) == ["thesis.txt"]

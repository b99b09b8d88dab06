"""Bad input through the real command line, grouped by command: a non-zero exit, no traceback, and a
message that names the problem.

Starts from the reliability probe's cases (issue 18). Every case runs ``interlingua.cli.main`` on
the tiny models saved as model directories, so nothing real loads. argparse refusals (numbers
checked at parse time) exit with status 2 and name the option; the others are one
``interlingua: error:`` line.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from interlingua.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

YES_NO = [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."} for i in range(40)]


def _spoiled_copies(good, where: dict, spoils: dict) -> None:
    """A copy of the directory ``good`` per entry of ``spoils``, damaged by it; ``where[name]`` is its path."""
    for name, spoil in spoils.items():
        shutil.copytree(good, good.parent / name)
        spoil(good.parent / name)
        where[name] = str(good.parent / name)


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def world(tmp_path_factory, llama, llama_dir):
    """Paths every case may name: model, text and concept files, and saved files made bad on purpose."""
    from interlingua.activations import extract_to_disk
    from interlingua.concepts import Concept
    from interlingua.sae.files import save_sae
    from interlingua.sae.model import SAEConfig, SparseAutoencoder

    root = tmp_path_factory.mktemp("bad-inputs")
    w = {"model": str(llama_dir), "root": str(root)}

    def put(name: str, content: str | bytes) -> str:
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)

    w["texts"] = put("t.txt", "\n".join(f"Line {i}: the cat and the dog walked to the river." for i in range(8)))
    w["empty"] = put("empty.txt", "")
    w["latin1"] = put("latin1.txt", "caf\xe9 au lait\n".encode("latin-1"))
    w["jsonl_no_text"] = put("no_text.jsonl", '{"body": "hello"}\n')
    w["concept"] = put("yn.json", json.dumps({"name": "yn", "train": YES_NO[:24], "test": YES_NO[24:34]}))
    w["concept_invalid"] = put("invalid.json", '{"name": "yn", "train": [')
    w["concept_no_train"] = put("no_train.json", json.dumps({"name": "yn", "test": YES_NO[24:34]}))
    w["concept_bad_label"] = put("bad_label.json", json.dumps(
        {"name": "yn", "train": YES_NO[:24], "test": [{"text": "a", "label": 2}, {"text": "b", "label": 0}]}))
    w["dir"] = str(root)
    w["file"] = w["texts"]

    # a saved concept, and three damaged copies of it
    torch.manual_seed(0)
    good = Concept(name="yn", model_name=llama.name, hook="resid_post.1", method="diff_of_means",
                   weight=torch.randn(64), bias=0.0, mean=torch.zeros(64), std=torch.ones(64), typical_norm=1.0)
    good.save(root / "concept_ok")
    _spoiled_copies(root / "concept_ok", w, {
        "concept_truncated": lambda d: _truncate(d / "concept.safetensors"),
        "concept_json_invalid": lambda d: (d / "concept.json").write_text("{not json"),
        "concept_json_list": lambda d: (d / "concept.json").write_text("[]")})
    nan = Concept(**{**good.__dict__, "weight": good.weight.clone(), "model": None})
    nan.weight[3] = float("nan")
    nan.save(root / "concept_nan")
    w["concept_nan"] = str(root / "concept_nan")

    # an SAE on the tiny model's width, and damaged copies
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=64, d_sae=32, k=4, hook_name="resid_post.1",
                                      model_name=str(llama_dir)))
    w["sae_ok"] = str(save_sae(sae, root / "sae_ok"))
    _spoiled_copies(root / "sae_ok", w, {
        "sae_truncated": lambda d: _truncate(d / "sae_weights.safetensors"),
        "sae_cfg_invalid": lambda d: (d / "cfg.json").write_text("{"),
        "sae_cfg_no_width": lambda d: (d / "cfg.json").write_text('{"architecture": "topk"}')})
    with torch.no_grad():
        sae.W_dec[0, 0] = float("nan")
    save_sae(sae, root / "sae_nan")
    w["sae_nan"] = str(root / "sae_nan")

    # an activation cache with one shard cut short
    texts = [f"Line {i}: the cat and the dog walked to the river." for i in range(8)]
    extract_to_disk(llama, texts, "resid_post.1", root / "cache_truncated", shard_tokens=40, progress=False)
    _truncate(root / "cache_truncated" / "shard-00001.safetensors")
    w["cache_truncated"] = str(root / "cache_truncated")
    w["shard_truncated"] = str(root / "cache_truncated" / "shard-00001.safetensors")

    w["gguf_garbage"] = put("garbage.gguf", b"GGUF" + bytes(range(256)) * 4)
    w["gguf_empty"] = put("empty.gguf", b"")
    return w


M = ["--model", "{model}"]
T = ["--text-file", "{texts}"]
EXTRACT = ["extract", *M, "--hook", "resid_post.1", *T, "--out", "{out}"]
SAE = ["sae", "train", *M, "--hook", "resid_post.1", *T, "--latents", "32", "--k", "4", "--vectors", "256",
       "--batch-size", "64", "--out", "{out}"]
STEER = ["steer", *M, "--concept", "{concept}", "--layers", "1", "--max-examples", "12"]
TRANSLATE = ["translate", "--concept", "{concept}", "--source", "no-such-model-anywhere", "--target", "{model}"]

# (command, argv, what the message must say). Translate cases name a model that does not exist as
# --source: the argument must be refused before any model is looked up.
CASES = [
    # extract
    ("extract", [*EXTRACT, "--max-docs", "-5"], "argument --max-docs: must be at least 1, got -5"),
    ("extract", [*EXTRACT, "--max-docs", "0"], "argument --max-docs: must be at least 1, got 0"),
    ("extract", [*EXTRACT, "--max-docs", "many"], "argument --max-docs: expected a whole number, got 'many'"),
    ("extract", [*EXTRACT, "--max-tokens", "-1"], "argument --max-tokens: must be at least 1, got -1"),
    ("extract", [*EXTRACT, "--max-tokens", "0"], "argument --max-tokens: must be at least 1"),
    ("extract", [*EXTRACT, "--skip-first", "-3"], "argument --skip-first: must be at least 0, got -3"),
    ("extract", [*EXTRACT, "--skip-first", "100000"], "--skip-first 100000 leaves no positions to read"),
    ("extract", [*EXTRACT, "--batch-tokens", "0"], "argument --batch-tokens: must be at least 1"),
    ("extract", [*EXTRACT, "--shard-tokens", "-1"], "argument --shard-tokens: must be at least 1"),
    ("extract", [*EXTRACT, "--shard-tokens", "1.5"], "argument --shard-tokens: expected a whole number"),
    ("extract", ["extract", *M, "--hook", "resid_post.9", *T, "--out", "{out}"], "resid_post.9"),
    ("extract", ["extract", *M, "--hook", "resid_mid.1", *T, "--out", "{out}"], "resid_mid.1"),
    ("extract", ["extract", *M, "--hook", "resid_post.1", "--text-file", "{root}/missing.txt", "--out", "{out}"],
     "missing.txt"),
    ("extract", ["extract", *M, "--hook", "resid_post.1", "--text-file", "{empty}", "--out", "{out}"],
     "contains no text"),
    ("extract", ["extract", *M, "--hook", "resid_post.1", "--text-file", "{latin1}", "--out", "{out}"], "UTF-8"),
    ("extract", ["extract", *M, "--hook", "resid_post.1", "--text-file", "{jsonl_no_text}", "--out", "{out}"],
     '"text"'),
    ("extract", ["extract", "--model", "{root}/no-model-here", "--hook", "resid_post.1", *T, "--out", "{out}"],
     "no-model-here"),
    ("extract", ["extract", *M, "--hook", "resid_post.1", *T, "--out", "{file}"], "is a file"),
    ("extract", [*EXTRACT, "--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    # concept
    ("concept", ["concept", "find", *M, "--concept", "{root}/nope.json"], "nope.json"),
    ("concept", ["concept", "find", *M, "--concept", "{concept_invalid}"], "invalid.json"),
    ("concept", ["concept", "find", *M, "--concept", "{concept_no_train}"], "train"),
    ("concept", ["concept", "find", *M, "--concept", "{concept_bad_label}"], "label"),
    ("concept", ["concept", "find", *M, "--concept", "{concept}", "--layer", "12"], "12"),
    ("concept", ["concept", "find", *M, "--concept", "{concept}", "--layer", "one"], "--layer takes a layer number"),
    ("concept", ["concept", "find", *M, "--concept", "{concept}", "--seed", "-1"],
     "argument --seed: must be between 0 and 4294967295, got -1"),
    ("concept", ["concept", "find", *M, "--concept", "{concept}", "--method", "pls"], "argument --method"),
    ("concept", ["concept", "find", *M, "--concept", "{concept}", "--out", "{file}"], "is a file"),
    # sae
    ("sae", [*SAE, "--latents", "0"], "argument --latents: must be at least 1, got 0"),
    ("sae", [*SAE, "--lr", "-1"], "argument --lr: must be above 0 and at most 1, got -1"),
    ("sae", [*SAE, "--lr", "1e6"], "argument --lr: must be above 0 and at most 1, got 1e6"),
    ("sae", [*SAE, "--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    ("sae", [*SAE, "--checkpoint-every", "0"], "argument --checkpoint-every: must be at least 1, got 0"),
    ("sae", [*SAE, "--k", "0"], "argument --k: must be at least 1, got 0"),
    ("sae", [*SAE[:-2], "--k", "100", "--out", "{out}"], "k = 100 active latents is more than the 32 latents"),
    ("sae", [*SAE, "--vectors", "0"], "argument --vectors: must be at least 1"),
    ("sae", [*SAE, "--batch-size", "-64"], "argument --batch-size: must be at least 1"),
    ("sae", [*SAE, "--expansion", "0"], "argument --expansion: must be at least 1"),
    ("sae", [*SAE, "--outlier-factor", "0.5"], "argument --outlier-factor: must be 0 (keep all) or at least 1"),
    ("sae", [*SAE, "--outlier-factor", "inf"], "argument --outlier-factor: must be a finite number"),
    ("sae", [*SAE, "--skip-first", "-1"], "argument --skip-first: must be at least 0"),
    ("sae", [*SAE, "--sparsity-coefficient", "-1"], "argument --sparsity-coefficient: must be at least 0"),
    ("sae", [*SAE, "--aux-coefficient", "nan"], "argument --aux-coefficient: must be a finite number"),
    ("sae", [*SAE, "--dead-after", "0"], "argument --dead-after: must be at least 1"),
    ("sae", [*SAE, "--threads", "0"], "argument --threads: must be at least 1"),
    ("sae", [*SAE, "--random-init", "-2"], "argument --random-init: must be between 0"),
    ("sae", [*SAE, "--max-docs", "-1"], "argument --max-docs: must be at least 1"),
    ("sae", [*SAE[:-2], "--out", "{file}"], "is a file"),
    ("sae", ["sae", "train", "--cache", "{cache_truncated}", *M, "--out", "{out}"], "leave out --model"),
    ("sae", ["sae", "train", "--hook", "resid_post.1", "--out", "{out}"], "name the model"),
    ("sae", ["sae", "train", "--cache", "{cache_truncated}", "--latents", "32", "--k", "4", "--vectors", "256",
             "--batch-size", "64", "--out", "{out}"], "{shard_truncated} is damaged"),
    ("sae", ["sae", "eval", "--sae", "{sae_truncated}", *M], "sae_weights.safetensors is damaged"),
    ("sae", ["sae", "eval", "--sae", "{sae_nan}", *M], "W_dec holds NaN or infinite values"),
    ("sae", ["sae", "eval", "--sae", "{sae_cfg_invalid}", *M], "cfg.json is not valid JSON"),
    ("sae", ["sae", "eval", "--sae", "{sae_cfg_no_width}", *M], "cfg.json is not a usable SAE configuration"),
    ("sae", ["sae", "eval", "--sae", "{root}/no-sae", *M], "is not an SAE directory"),
    ("sae", ["sae", "eval", "--sae", "{sae_ok}", *M, "--snippets", "-1"], "argument --snippets: must be at least 0"),
    ("sae", ["sae", "eval", "--sae", "{sae_ok}", *M, "--max-tokens", "0"], "argument --max-tokens: must be at least 1"),
    ("sae", ["sae", "match", "--sae-a", "{sae_ok}", "--sae-b", "{sae_ok}", "--n-null", "0"],
     "argument --n-null: must be at least 1"),
    ("sae", ["sae", "match", "--sae-a", "{sae_ok}", "--sae-b", "{sae_ok}", "--top", "-3"],
     "argument --top: must be at least 1"),
    # steer
    ("steer", [*STEER, "--strengths", "nan"], "must be a finite number"),
    ("steer", [*STEER, "--strengths", "inf"], "must be a finite number"),
    ("steer", [*STEER, "--strengths", "strong"], "--strengths takes comma-separated numbers"),
    ("steer", [*STEER, "--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1"),
    ("steer", [*STEER, "--temperature", "nan"], "argument --temperature: must be a finite number"),
    ("steer", [*STEER, "--temperature", "-1"], "argument --temperature: must be at least 0"),
    ("steer", [*STEER, "--batch-size", "0"], "argument --batch-size: must be at least 1"),
    ("steer", [*STEER, "--max-examples", "-1"], "argument --max-examples: must be at least 0"),
    ("steer", [*STEER, "--seed", "-5"], "argument --seed: must be between 0"),
    ("steer", [*STEER, "--corpus-docs", "-3"], "argument --corpus-docs: must be at least 1"),
    ("steer", [*STEER, "--steered-docs", "-1"], "argument --steered-docs: must be at least 0"),
    ("steer", [*STEER, "--steered-strength", "0"], "argument --steered-strength: must be above 0"),
    ("steer", ["steer", *M, "--concept", "{concept}", "--layers", "one"], "--layers takes comma-separated"),
    ("steer", ["steer", *M, "--concept", "{concept}", "--layers", "9", "--max-examples", "12"], "9"),
    ("steer", ["steer", *M], "give --concept"),
    ("steer", ["steer", *M, "--concept", "{concept_json_invalid}"], "concept.json is not valid JSON"),
    ("steer", ["steer", *M, "--concept", "{concept_json_list}"], "is not an interlingua concept file"),
    ("steer", ["steer", *M, "--concept", "{concept_truncated}"], "concept.safetensors is damaged"),
    ("steer", ["steer", *M, "--concept", "{concept_nan}"], "weight holds NaN or infinite values"),
    ("steer", ["steer", *M, "--concept", "{concept}", "--layers", "1,2", "--strengths", "0.5", "--export-gguf",
               "{out}.gguf"], "--export-gguf writes one layer's vector"),
    # gguf
    ("gguf", [*STEER, "--import-gguf", "{gguf_garbage}"], "garbage.gguf"),
    ("gguf", [*STEER, "--import-gguf", "{gguf_empty}"], "empty.gguf"),
    ("gguf", [*STEER, "--import-gguf", "{root}/missing.gguf"], "missing.gguf"),
    ("gguf", [*STEER, "--import-gguf", "{texts}"], "t.txt"),
    # sample
    ("sample", ["sample", *M, "--temperature", "nan"], "argument --temperature: must be a finite number, got nan"),
    ("sample", ["sample", *M, "--temperature", "0"], "argument --temperature: must be above 0, got 0"),
    ("sample", ["sample", *M, "-n", "0"], "argument -n: must be at least 1, got 0"),
    ("sample", ["sample", *M, "--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1"),
    ("sample", ["sample", *M, "--seed", "-1"], "argument --seed: must be between 0"),
    ("sample", ["sample", *M, "--seed", str(2**64)], "argument --seed: must be between 0"),
    # translate: refused before any model is looked up (the --source given does not exist)
    ("translate", [*TRANSLATE, "--controls", "bogus"], "unknown control(s) ['bogus']"),
    ("translate", [*TRANSLATE, "--controls", "label_shuffle,nope"], "unknown control(s) ['nope']"),
    ("translate", [*TRANSLATE, "--pos-weight", "nan"], "argument --pos-weight: must be a finite number, got nan"),
    ("translate", [*TRANSLATE, "--pos-weight", "0"], "argument --pos-weight: must be above 0"),
    ("translate", [*TRANSLATE, "--pos-weight", "-2"], "argument --pos-weight: must be above 0"),
    ("translate", [*TRANSLATE, "--corpus-docs", "-3"], "argument --corpus-docs: must be at least 0, got -3"),
    ("translate", [*TRANSLATE, "--corpus-docs", "0"], "the shared text would be empty"),
    ("translate", [*TRANSLATE, "--draws", "0"], "argument --draws: must be at least 1"),
    ("translate", [*TRANSLATE, "--generate", "-1"], "argument --generate: must be at least 0"),
    ("translate", [*TRANSLATE, "--seed", "-1"], "argument --seed: must be between 0"),
    ("translate", [*TRANSLATE, "--layers-b", "a,b"], "--layers-b takes comma-separated layer numbers"),
    ("translate", [*TRANSLATE, "--layers-b", "-1"], "--layers-b takes layer numbers 0, 1, 2"),
    ("translate", [*TRANSLATE, "--out", "{file}"], "is a file"),
    # demo, toy
    ("demo", ["demo", "--corpus-docs", "2"], "argument --corpus-docs: must be at least 5, got 2"),
    ("demo", ["demo", "--max-pairs", "-1"], "argument --max-pairs: must be at least 0"),
    ("demo", ["demo", "--concepts", "no_such_concept"], "no_such_concept"),
    ("toy", ["toy", "reproduce", "--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of the command line ``argv`` (argparse's refusals exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command,argv,says", CASES, ids=[f"{c}:{' '.join(a[-2:])}" for c, a, _ in CASES])
def test_bad_input_is_one_clear_error(command, argv, says, world, tmp_path, capsys):
    paths = {**world, "out": str(tmp_path / "out")}
    code, err = _run([a.format(**paths) for a in argv], capsys)
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    assert says.format(**paths) in err, err
    assert err.rstrip().splitlines()[-1].startswith(("interlingua: error:", "interlingua ")), err


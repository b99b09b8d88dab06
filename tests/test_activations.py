"""Activation extraction: correctness, token index, storage, resumption, and bad input."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from interlingua.activations import (
    ActivationCache,
    Activations,
    _batches,
    extract,
    extract_to_disk,
    outlier_mask,
    outlier_report,
)
from interlingua.errors import InterlinguaError

from conftest import SAMPLE_TEXTS

TEXTS = SAMPLE_TEXTS + ["A much longer document. " * 12, "Mid-sized text with several words in it."]


def test_matches_hidden_states_one_by_one(tiny):
    acts = extract(tiny, TEXTS, ["resid_pre.0", "resid_post.1"], batch_tokens=256)
    for d, text in enumerate(TEXTS):
        enc = tiny.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            hs = tiny.model(**enc, output_hidden_states=True).hidden_states
        rows = acts.doc == d
        torch.testing.assert_close(acts["resid_pre.0"][rows], hs[0][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(acts["resid_post.1"][rows], hs[2][0], rtol=1e-4, atol=1e-5)


def test_stopping_early_changes_nothing(tiny):
    early = extract(tiny, TEXTS, "resid_post.1")
    both = extract(tiny, TEXTS, ["resid_post.1", "resid_post.3"])
    torch.testing.assert_close(early["resid_post.1"], both["resid_post.1"])


def test_batching_and_padding_change_nothing(tiny):
    one = extract(tiny, TEXTS, "mlp_out.2", batch_tokens=1)  # every document alone
    many = extract(tiny, TEXTS, "mlp_out.2", batch_tokens=100_000)  # all in one padded batch
    torch.testing.assert_close(one["mlp_out.2"], many["mlp_out.2"], rtol=1e-4, atol=1e-5)


def test_batches_are_length_sorted_and_bounded():
    lengths = [5, 50, 7, 48, 6, 49]
    batches = _batches(lengths, range(6), batch_tokens=100)
    assert sorted(d for b in batches for d in b) == list(range(6))
    for b in batches:
        assert len(b) * max(lengths[d] for d in b) <= 100 or len(b) == 1
    assert batches[0] == [1, 5]  # the two longest together: little padding


def test_token_index_traces_back_to_text(tiny):
    acts = extract(tiny, TEXTS, "resid_post.0")
    tok = tiny.tokenizer
    assert len(acts) == sum(len(tok(t).input_ids) for t in TEXTS)
    for i in range(len(acts)):
        text = TEXTS[int(acts.doc[i])]
        enc = tok(text, return_offsets_mapping=True)
        p = int(acts.pos[i])
        assert acts.token_id[i] == enc.input_ids[p]
        assert (int(acts.char_start[i]), int(acts.char_end[i])) == tuple(enc.offset_mapping[p])
        assert acts.tokens[i] == tok.convert_ids_to_tokens(enc.input_ids[p])
    row = int((acts.doc == 0).nonzero()[3])
    assert "[[" in acts.context(row) and acts.context(row).replace("[[", "").replace("]]", "") in TEXTS[0]


def test_skip_first_leaves_out_positions(gemma):
    full = extract(gemma, TEXTS, "resid_post.1")
    skipped = extract(gemma, TEXTS, "resid_post.1", skip_first=1)
    assert int(skipped.pos.min()) == 1
    assert len(full) - len(skipped) == len(TEXTS)
    torch.testing.assert_close(full.select(full.pos >= 1)["resid_post.1"], skipped["resid_post.1"])


def test_outliers_found_at_planted_position():
    norms = torch.ones(100)
    norms[[0, 37]] = 50.0
    assert outlier_mask(norms, factor=10).nonzero().squeeze(1).tolist() == [0, 37]


def test_outlier_report_names_positions(tiny):
    acts = extract(tiny, TEXTS, "resid_post.1")
    acts.vectors["resid_post.1"][acts.pos == 0] *= 1000
    rep = outlier_report(acts, "resid_post.1")
    assert rep["n_outliers"] == len(TEXTS)
    assert rep["top_positions"][0] == {"pos": 0, "count": len(TEXTS)}


def test_bfloat16_close_to_float32(llama):
    ref = extract(llama, TEXTS, "resid_post.2")["resid_post.2"]
    llama.model.to(torch.bfloat16)
    try:
        low = extract(llama, TEXTS, "resid_post.2")["resid_post.2"]
    finally:
        llama.model.to(torch.float32)
    assert low.dtype == torch.bfloat16
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 0.05


def test_save_load_bit_exact(tiny, tmp_path):
    acts = extract(tiny, TEXTS, ["attn_out.1", "resid_post.2"])
    acts.save(tmp_path / "a.safetensors")
    back = Activations.load(tmp_path / "a.safetensors")
    for h in acts.hooks:
        assert torch.equal(acts[h], back[h])
    assert torch.equal(acts.char_end, back.char_end) and acts.tokens == back.tokens
    assert back.texts == TEXTS and back.meta == acts.meta


def test_disk_shards_equal_in_memory(tiny, tmp_path):
    mem = extract(tiny, TEXTS, "resid_post.1")
    cache = extract_to_disk(tiny, TEXTS, "resid_post.1", tmp_path / "out", shard_tokens=20, progress=False)
    assert len(cache.manifest["shards"]) > 2
    disk = cache.load()
    torch.testing.assert_close(disk["resid_post.1"], mem["resid_post.1"])
    assert torch.equal(disk.doc, mem.doc) and disk.texts == TEXTS


def test_interrupted_job_resumes_bit_identical(tiny, tmp_path):
    full = extract_to_disk(tiny, TEXTS, "resid_post.2", tmp_path / "full", shard_tokens=20, progress=False).load()

    def die(i):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_to_disk(tiny, TEXTS, "resid_post.2", tmp_path / "part", shard_tokens=20, progress=False,
                        after_shard=die)
    assert not ActivationCache(tmp_path / "part").complete
    seen = []
    resumed = extract_to_disk(tiny, TEXTS, "resid_post.2", tmp_path / "part", shard_tokens=20, progress=False,
                              after_shard=seen.append).load()
    assert 0 not in seen and 2 not in seen and seen  # finished shards were not recomputed
    assert torch.equal(resumed["resid_post.2"], full["resid_post.2"])
    assert torch.equal(resumed.pos, full.pos)


KILL_SCRIPT = """
import os, signal, sys
from interlingua.models import load_model
from interlingua.activations import extract_to_disk
texts = [l for l in open(sys.argv[2], encoding="utf-8").read().splitlines() if l]
kill_at = int(sys.argv[4])
def after(i):
    if i == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
extract_to_disk(load_model(sys.argv[1]), texts, "resid_post.1", sys.argv[3], shard_tokens=30,
                progress=False, after_shard=after)
"""


def test_killed_process_resumes(llama, tmp_path):
    """A real SIGKILL in the middle of a job; the rerun completes it bit-identically."""
    model_dir = tmp_path / "tiny-llama"
    llama.model.save_pretrained(model_dir)
    llama.tokenizer.save_pretrained(model_dir)
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS * 3), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = lambda out, kill: subprocess.run(  # noqa: E731
        [sys.executable, "-c", KILL_SCRIPT, str(model_dir), str(text_file), str(out), str(kill)],
        env=env, capture_output=True, text=True, timeout=300)
    killed = run(tmp_path / "out", 1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    assert run(tmp_path / "out", -1).returncode == 0
    assert run(tmp_path / "ref", -1).returncode == 0
    a, b = Activations.load(tmp_path / "out"), Activations.load(tmp_path / "ref")
    assert torch.equal(a["resid_post.1"], b["resid_post.1"]) and torch.equal(a.doc, b.doc)


def test_other_job_in_out_dir_is_refused(tiny, tmp_path):
    extract_to_disk(tiny, TEXTS, "resid_post.1", tmp_path, progress=False)
    with pytest.raises(InterlinguaError, match="different extraction.*hooks.*--overwrite"):
        extract_to_disk(tiny, TEXTS, "resid_post.2", tmp_path, progress=False)
    again = extract_to_disk(tiny, TEXTS, "resid_post.2", tmp_path, progress=False, overwrite=True)
    assert again.manifest["job"]["hooks"] == ["resid_post.2"]


def test_non_empty_foreign_dir_is_refused(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(InterlinguaError, match="not empty.*notes.txt.*new or empty directory") as err:
            extract_to_disk(tiny, TEXTS, "resid_post.1", tmp_path, progress=False, overwrite=overwrite)
        assert "pass --overwrite" not in str(err.value)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _stop_at(shard: int):
    """An ``after_shard`` that interrupts the job once shard ``shard`` is on disk."""
    def stop(i):
        if i == shard:
            raise KeyboardInterrupt
    return stop


def test_overwrite_replaces_an_extraction_and_nothing_else(llama, tmp_path):
    """The probe's failure: --overwrite emptied a directory holding the user's thesis.txt and sub/data.csv."""
    out = tmp_path / "victim"
    extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=20, progress=False)
    (out / "thesis.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2")
    for hook in ("resid_post.1", "resid_post.2"):  # the same job or another one
        with pytest.raises(InterlinguaError, match="other files.*sub, thesis.txt.*new or empty") as err:
            extract_to_disk(llama, TEXTS, hook, out, progress=False, overwrite=True)
        assert "pass --overwrite" not in str(err.value)
    assert (out / "thesis.txt").read_text() == "mine" and (out / "sub" / "data.csv").read_text() == "1,2"
    assert ActivationCache(out).complete  # the extraction is untouched too
    # the same job still resumes (and deletes nothing) with the user's files beside it
    assert extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=20, progress=False).complete


def test_overwrite_killed_half_way_continues_either_way(llama, tmp_path):
    """--overwrite deletes the manifest last: what a kill leaves lets either command carry on."""
    full = extract_to_disk(llama, TEXTS, "resid_post.1", tmp_path / "full", shard_tokens=20, progress=False).load()
    for rerun in ("same job", "overwrite"):
        out = tmp_path / rerun
        extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=20, progress=False)
        (out / "texts.json").unlink()  # the state a kill during _clear_extraction leaves:
        (out / "shard-00001.safetensors").unlink()  # some files gone, the manifest still there
        if rerun == "same job":
            again = extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=20, progress=False).load()
            assert torch.equal(again["resid_post.1"], full["resid_post.1"]) and again.texts == TEXTS
        else:
            again = extract_to_disk(llama, TEXTS[:3], "resid_post.2", out, shard_tokens=20, progress=False,
                                    overwrite=True)
            assert again.manifest["job"]["hooks"] == ["resid_post.2"] and again.texts == TEXTS[:3]
            assert sorted(p.name for p in out.iterdir() if not p.name.startswith("shard-")) == \
                ["manifest.json", "texts.json"]


def test_extract_killed_at_any_instant_resumes_identical(llama, tmp_path, kill_instants):
    """Every instant of a job, the very first write included: the same call resumes to the same result."""
    full = extract_to_disk(llama, TEXTS, "resid_post.1", tmp_path / "full", shard_tokens=40, progress=False).load()
    root = tmp_path / "root"
    root.mkdir()
    shots = kill_instants(root, lambda: extract_to_disk(llama, TEXTS, "resid_post.1", root / "out", shard_tokens=40,
                                                        progress=False))
    assert len(shots) >= 10
    for shot in shots:
        if not (shot / "out").exists():
            continue
        again = extract_to_disk(llama, TEXTS, "resid_post.1", shot / "out", shard_tokens=40, progress=False).load()
        assert torch.equal(again["resid_post.1"], full["resid_post.1"]) and torch.equal(again.doc, full.doc), shot
        assert again.texts == TEXTS
        # the finished job keeps its own files only: the temporary ones of the killed write are gone
        assert sorted(p.name for p in (shot / "out").iterdir()) == sorted(p.name for p in (tmp_path / "full").iterdir())


def test_resume_cleans_only_its_own_temporary_files(llama, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=40, progress=False, after_shard=_stop_at(1))
    killed = [".shard-00002.safetensors.k2x_9q0a.tmp", ".manifest.json.a1b2c3d4.tmp", ".texts.json.zz_00000.tmp"]
    for name in killed:
        (out / name).write_bytes(b"half a write")
    users = [".notes.k2x_9q0a.tmp", ".shard-00002.safetensors.tmp", "shard-00002.safetensors.k2x_9q0a.tmp"]
    for name in users:
        (out / name).write_text("the user's")
    extract_to_disk(llama, TEXTS, "resid_post.1", out, shard_tokens=40, progress=False)
    left = {p.name for p in out.iterdir()}
    assert not left & set(killed) and set(users) <= left


def test_full_disk_gives_clear_message(tiny, tmp_path, monkeypatch):
    import errno

    import interlingua._io as io

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io, "save_file", full)
    with pytest.raises(InterlinguaError, match="disk is full.*resumes"):
        extract_to_disk(tiny, TEXTS, "resid_post.1", tmp_path / "o", progress=False)
    assert not list((tmp_path / "o").glob("*.tmp")) and not list((tmp_path / "o").glob(".*.tmp"))


@pytest.mark.parametrize("texts,match", [([], "empty"), (["", ""], "no tokens"), ([3], "strings")])
def test_bad_texts(llama, texts, match):
    with pytest.raises(InterlinguaError, match=match):
        extract(llama, texts, "resid_post.1")


def test_text_longer_than_context(llama):
    long = "word " * 400  # the tiny model's context is 256
    with pytest.raises(InterlinguaError, match="longer than .*context of 256.*max-tokens"):
        extract(llama, [long], "resid_post.1")
    acts = extract(llama, [long], "resid_post.1", max_tokens=100)
    assert len(acts) == 100


def test_unknown_hook_in_extract(llama):
    with pytest.raises(InterlinguaError, match="Valid hook points"):
        extract(llama, TEXTS, "resid_post.9")

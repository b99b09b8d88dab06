"""kill -9 at any moment, then the same command again: the result is byte for byte an uninterrupted run's.

The harness runs the real command (``python -m interlingua …``) in a subprocess on a tiny model
and SIGKILLs it at a chosen instant: the moment a write's temporary file (or a set-aside copy
of a directory) first appears in the output directory, found by polling it, or a random delay
after the run took its lock (its model loaded, its work begun). Then it runs the same command
again, in this process, to the end, and compares every file with an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import interlingua
from interlingua import _io
from interlingua.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = str(Path(interlingua.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# Files a run writes that record how long it took, not what it computed.
TIMINGS = {"seconds", "seconds_per_step", "vectors_per_s", "resumed_from_step"}
Trigger = Callable[[subprocess.Popen, Path], bool]


# --------------------------------------------------------------------------------------------
# When to kill


def _entries(out: Path) -> list[str]:
    """Names in OUT, and OUT's own temporary or set-aside copies beside it (a directory saved as one unit)."""
    names = []
    for where, mine in ((out, lambda parsed: True), (out.parent, lambda parsed: parsed[0] == out.name)):
        try:
            names += [e.name for e in os.scandir(where) if (p := _io.parse_leftover(e.name)) and mine(p)]
        except FileNotFoundError:
            pass
    return names


def at_write(kind: str = "tmp", nth: int = 1) -> Trigger:
    """Kill when the ``nth`` distinct leftover name of ``kind`` (tmp, new, old, trash) shows up in or beside OUT."""
    def trigger(proc: subprocess.Popen, out: Path) -> bool:
        seen: set[str] = set()
        while proc.poll() is None:
            for name in _entries(out):
                parsed = _io.parse_leftover(name)
                if parsed[1] == kind and name not in seen:
                    seen.add(name)
                    if len(seen) == nth:
                        return _kill(proc)
        return False
    trigger.__name__ = f"at_write({kind}, {nth})"
    return trigger


def after_delay(seconds: float) -> Trigger:
    """Kill ``seconds`` after the run took its output directory's lock (its work has begun)."""
    def trigger(proc: subprocess.Popen, out: Path) -> bool:
        while proc.poll() is None and not (out / _io.LOCK_FILE).exists():
            time.sleep(0.002)
        time.sleep(seconds)
        return _kill(proc)
    trigger.__name__ = f"after_delay({seconds:.2f})"
    return trigger


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc``; whether it was still running (the kill landed)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


# --------------------------------------------------------------------------------------------
# The harness


def kill_then_resume(argv: list[str], out: Path, triggers: list[Trigger]) -> list[str]:
    """Run ``argv`` once per trigger, killed when it fires, then once more to the end; the triggers that landed."""
    landed = []
    for trigger in triggers:
        proc = subprocess.Popen([sys.executable, "-m", "interlingua", *argv], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            if trigger(proc, out):
                landed.append(trigger.__name__)
            else:
                assert proc.wait() == 0, proc.stderr.read()  # finished before the trigger: it must have succeeded
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
    assert main(argv) == 0
    return landed


def contents(root: Path) -> dict[str, object]:
    """Every file under ``root``: its bytes, or for JSON its content less the timings (which differ run to run);
    an HTML report is drawn from that JSON (timings included), so only its presence is compared."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in TIMINGS}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj

    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = str(path.relative_to(root))
        files[name] = (strip(json.loads(path.read_text())) if path.suffix == ".json"
                       else "a report" if path.suffix == ".html" else path.read_bytes())
    return files


def assert_same_as_uninterrupted(argv_for: Callable[[Path], list[str]], tmp_path: Path, triggers: list[Trigger],
                                 *, min_landed: int) -> list[str]:
    """The command killed at ``triggers`` and resumed ends identical to one run straight through, with nothing left over."""
    reference = tmp_path / "reference"
    assert main(argv_for(reference)) == 0
    out = tmp_path / "out"
    landed = kill_then_resume(argv_for(out), out, triggers)
    assert len(landed) >= min_landed, landed
    got, want = contents(out), contents(reference)
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    assert [n for n in want if got[n] != want[n]] == []
    assert _entries(out) == []  # no temporary, set-aside or lock file in or beside it
    return landed


# --------------------------------------------------------------------------------------------
# The commands


@pytest.fixture
def texts(tmp_path) -> str:
    path = tmp_path / "t.txt"
    path.write_text("\n".join(f"Line {i}: the cat and the dog walked down to the river {'again ' * (i % 5)}."
                              for i in range(48)) + "\n")
    return str(path)


def extract_argv(model: Path, texts: str) -> Callable[[Path], list[str]]:
    return lambda out: ["extract", "--model", str(model), "--hook", "resid_post.1", "--hook", "mlp_out.3",
                        "--text-file", texts, "--shard-tokens", "40", "--dtype", "float32", "--out", str(out),
                        "--json"]


def sae_argv(model: Path, texts: str) -> Callable[[Path], list[str]]:
    return lambda out: ["sae", "train", "--model", str(model), "--hook", "resid_post.1", "--text-file", texts,
                        "--latents", "64", "--k", "4", "--vectors", str(64 * 60), "--batch-size", "64",
                        "--docs-per-chunk", "8", "--checkpoint-every", "2", "--compute-dtype", "float32",
                        "--dtype", "float32", "--threads", "1", "--out", str(out), "--json"]


def test_extract_killed_as_a_shard_is_written_resumes_identical(llama_dir, texts, tmp_path):
    assert_same_as_uninterrupted(extract_argv(llama_dir, texts), tmp_path, [at_write("tmp", 3)], min_landed=1)


def test_sae_train_killed_while_its_checkpoint_is_swapped_resumes_identical(llama_dir, texts, tmp_path):
    assert_same_as_uninterrupted(sae_argv(llama_dir, texts), tmp_path, [at_write("old", 2)], min_landed=1)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["extract", "sae train"])
def test_many_kills_at_writes_and_at_random_then_identical(command, llama_dir, texts, tmp_path):
    """Several kills of one job, each at a different instant, before it is allowed to finish."""
    rng = random.Random(18)
    argv = (extract_argv if command == "extract" else sae_argv)(llama_dir, texts)
    writes = [at_write("tmp", 1), at_write("tmp", 5)]
    if command == "sae train":  # the steps of replacing the checkpoint directory
        writes += [at_write("new", 1), at_write("old", 1), at_write("trash", 1)]
    delays = [after_delay(rng.uniform(0.0, 0.6)) for _ in range(3)]
    landed = assert_same_as_uninterrupted(argv, tmp_path, writes + delays, min_landed=len(writes))
    print(f"{command}: {len(landed)} kills landed ({', '.join(landed)}); resumed identical")


def test_concept_find_killed_while_saving_over_a_concept_ends_identical(llama_dir, tmp_path):
    """Killed while the new concept is written next to the old one; the rerun saves it whole."""
    yes_no = [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."} for i in range(40)]
    concept = tmp_path / "yn.json"
    concept.write_text(json.dumps({"name": "yn", "train": yes_no[:24], "test": yes_no[24:]}))

    def argv(out: Path, layer: str = "2") -> list[str]:
        return ["concept", "find", "--model", str(llama_dir), "--concept", str(concept), "--layer", layer,
                "--method", "diff_of_means", "--out", str(out), "--overwrite", "--json"]

    assert main(argv(tmp_path / "out", layer="1")) == 0  # an older concept, replaced by the killed save
    assert_same_as_uninterrupted(argv, tmp_path, [at_write("tmp", 1)], min_landed=1)


def test_translate_killed_while_replacing_a_translation_ends_identical(llama_dir, gemma_dir, cli_files, tmp_path):
    """Killed while the new translation is written beside an older one, and while the older one is deleted.

    (Every instant between, each rename, is covered in-process by the translation test of
    ``kill_instants``: a subprocess cannot be stopped reliably inside microseconds.)
    """
    def argv(out: Path, seed: str = "0") -> list[str]:
        return ["translate", "--concept", cli_files["concept"], "--source", str(llama_dir), "--target", str(gemma_dir),
                "--corpus-docs", "6", "--layers-b", "1,3", "--controls", "shuffled_pairing", "--draws", "5",
                "--seed", seed, "--dtype", "float32", "--out", str(out), "--json"]

    assert main(argv(tmp_path / "out", seed="1")) == 0  # an older translation, replaced by the killed saves
    landed = assert_same_as_uninterrupted(argv, tmp_path, [at_write("tmp", 1), at_write("trash", 1)],
                                          min_landed=2)
    print(f"translate: {len(landed)} kills landed ({', '.join(landed)}); resumed identical")

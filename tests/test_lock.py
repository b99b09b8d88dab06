"""One writer per output directory: a second process is refused with a clear error, a dead one never blocks.

Every test here runs real processes: the holder is a second Python process that takes a
directory's lock with interlingua's own code (or a real ``sae train``), and it is killed with
SIGKILL, as a user's ``kill -9`` would, to show the kernel releases its lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import interlingua
from interlingua import _io
from interlingua.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = str(Path(interlingua.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

HOLD = """
import sys, time
from interlingua import _io
with _io.writing(sys.argv[1], beside=sys.argv[2] == "beside"):
    print("held", flush=True)
    time.sleep(600)
"""


@contextlib.contextmanager
def held_elsewhere(directory: Path, *, beside: bool):
    """Another process holding ``directory``'s lock until the block ends; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), "beside" if beside else "inside"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        yield proc
    finally:
        proc.kill()
        proc.wait()



def _commands(model: str, cli_files: dict, out: Path) -> dict[str, tuple[list[str], bool]]:
    """Each command that writes a directory, and whether its lock sits beside that directory (else inside)."""
    return {
        "extract": (["extract", "--model", model, "--hook", "resid_post.1", "--text-file", cli_files["texts"],
                     "--out", str(out)], False),
        "sae train": (["sae", "train", "--model", model, "--hook", "resid_post.1", "--text-file", cli_files["texts"],
                       "--latents", "32", "--k", "4", "--vectors", "256", "--batch-size", "64", "--out", str(out)],
                      False),
        "concept find": (["concept", "find", "--model", model, "--concept", cli_files["concept"], "--layer", "1",
                          "--method", "diff_of_means", "--out", str(out)], True),
        "translate": (["translate", "--concept", cli_files["concept"], "--source", model, "--target", model,
                       "--out", str(out)], True),
    }


@pytest.mark.parametrize("command", ["extract", "sae train", "concept find", "translate"])
def test_second_writer_is_refused_and_a_killed_ones_lock_never_blocks(command, llama_dir, cli_files, tmp_path, capsys):
    out = tmp_path / "out"
    argv, beside = _commands(str(llama_dir), cli_files, out)[command]
    with held_elsewhere(out, beside=beside) as holder:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        assert f"{out} is being written by another interlingua process (pid {holder.pid})" in err, err
        assert "choose another --out" in err
        if beside:  # refused at once, before any work (no progress bar ran)
            assert err.count("\n") == 1 and "\r" not in err, err
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert _io.lock_path(out, beside=beside).exists()  # a killed holder leaves its lock file: it binds no one
    if command == "translate":
        return  # the lock is all that differs; the tiny translation itself is tested elsewhere
    assert main(argv) == 0, capsys.readouterr().err
    assert not _io.lock_path(out, beside=beside).exists()  # released and removed by the run that finished
    assert not [p.name for p in out.rglob("*") if p.name.endswith(".lock")]


def test_two_sae_trainings_into_one_directory(llama_dir, cli_files, tmp_path):
    """The probe's case: a real `sae train` is running; the same command in another process is refused."""
    out = tmp_path / "sae"
    argv, _ = _commands(str(llama_dir), cli_files, out)["sae train"]
    argv = [a if a != "256" else str(64 * 10**6) for a in argv] + ["--checkpoint-every", "5", "--threads", "1"]
    first = subprocess.Popen([sys.executable, "-m", "interlingua", *argv], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        lock = out / _io.LOCK_FILE
        deadline = time.monotonic() + 120
        while not (out / "checkpoint").is_dir():  # running, and has written a checkpoint under its lock
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert lock.read_text().strip() == str(first.pid)
        second = subprocess.run([sys.executable, "-m", "interlingua", *argv], env=ENV, capture_output=True,
                                text=True, timeout=180)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
        assert f"{out} is being written by another interlingua process (pid {first.pid})" in second.stderr
        assert first.poll() is None  # the first one is untouched and still training
    finally:
        first.kill()
        first.wait()
    # what the first left is a clean checkpoint that the same command resumes from
    ckpt = json.loads((_io.recover_dir(out / "checkpoint") / "trainer.json").read_text())
    assert ckpt["step"] % 5 == 0 and ckpt["step"] > 0


def test_lock_is_reentrant_in_one_process_and_removed_on_release(tmp_path):
    target = tmp_path / "c"
    with _io.writing(target, beside=True):
        with _io.writing(target, beside=True):  # e.g. a command's lock, then the save inside it
            assert _io.lock_path(target, beside=True).read_text().strip() == str(os.getpid())
        assert _io.lock_path(target, beside=True).exists()
    assert not _io.lock_path(target, beside=True).exists()
    assert not target.exists()  # a lock beside the directory does not create it


def test_a_filesystem_without_locks_is_written_with_a_warning(tmp_path, monkeypatch):
    """Some network mounts refuse flock: the write goes on (nothing else can guard it) and the user is told."""
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="does not support file locks.*run one at a time"):
        with _io.writing(tmp_path / "out"):
            _io.write_json(tmp_path / "out" / "x.json", {"ok": True})
    assert _io.read_json(tmp_path / "out" / "x.json") == {"ok": True}

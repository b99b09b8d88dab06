"""Filesystem failures (read-only, full disk, a file in the way) are one clear error per command, never a traceback."""

from __future__ import annotations


import pytest

from interlingua.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")




def _commands(model: str, cli_files: dict, out: str) -> dict[str, tuple[list[str], str]]:
    """Each command that writes, with ``out`` as its output, and the path its error must name."""
    return {
        "extract": (["extract", "--model", model, "--hook", "resid_post.1", "--text-file", cli_files["texts"],
                     "--out", f"{out}/ex"], f"{out}/ex"),
        "extract into it": (["extract", "--model", model, "--hook", "resid_post.1", "--text-file", cli_files["texts"],
                             "--out", out], out),  # its first write is the lock file inside it
        "sae train": (["sae", "train", "--model", model, "--hook", "resid_post.1", "--text-file", cli_files["texts"],
                       "--latents", "32", "--k", "4", "--vectors", "256", "--batch-size", "64", "--skip-first", "0",
                       "--out", f"{out}/sae"], f"{out}/sae"),
        "concept find": (["concept", "find", "--model", model, "--concept", cli_files["concept"], "--layer", "1",
                          "--method", "diff_of_means", "--out", f"{out}/concept"], f"{out}/concept"),
        "steer --export-gguf": (["steer", "--model", model, "--concept", cli_files["concept"], "--layers", "1",
                                 "--strengths", "0.5", "--max-examples", "12", "--export-gguf", f"{out}/x.gguf"],
                                f"{out}/x.gguf"),
        "sample": (["sample", "--model", model, "-n", "1", "--max-new-tokens", "2", "--out", f"{out}/s.jsonl"],
                   f"{out}/s.jsonl"),
    }


COMMANDS = list(_commands("m", {"texts": "", "concept": ""}, "o"))


@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_output_is_one_clear_error(command, llama_dir, cli_files, read_only_dir, capsys):
    argv, named = _commands(str(llama_dir), cli_files, str(read_only_dir))[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"cannot write {named}" in err and "Choose a directory you can write to" in err, err
    assert not any(read_only_dir.iterdir())


@pytest.mark.parametrize("command", ["extract", "sae train", "concept find"])
def test_full_disk_is_one_clear_error(command, llama_dir, cli_files, tmp_path, full_disk, capsys):
    out = tmp_path / "out"
    argv, named = _commands(str(llama_dir), cli_files, str(out))[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"the disk is full while writing {named}" in err and "run the same command again" in err, err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # nothing half written is left


@pytest.mark.parametrize("command", ["extract", "sae train", "concept find", "sample"])
def test_a_file_where_a_directory_belongs_is_one_clear_error(command, llama_dir, cli_files, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    argv, _ = _commands(str(llama_dir), cli_files, str(blocker))[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert str(blocker) in err and "a file stands where a directory is needed" in err, err
    assert blocker.read_text() == "mine"


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size, read_only)``: a real small filesystem mounted under tmp_path (needs root; skips otherwise)."""
    import os
    import subprocess

    mounted = []

    def mount(size: str, read_only: bool = False):
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                              text=True) if os.geteuid() == 0 else None
        if done is None or done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root and mount permission); the simulated full-disk "
                        "and read-only tests above still run" + (f": {done.stderr.strip()}" if done else ""))
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("command,size", [("extract", "12k"), ("sae train", "12k"), ("concept find", "4k"),
                                          ("sample", "4k")])
def test_a_real_full_disk_is_one_clear_error(command, size, llama_dir, cli_files, tmpfs, capsys):
    """The same commands on a real filesystem too small for their output: whichever write fills it, one clear message."""
    out = tmpfs(size)
    argv, _ = _commands(str(llama_dir), cli_files, str(out))[command]
    if command == "sample":
        argv[argv.index("-n") + 1], argv[argv.index("--max-new-tokens") + 1] = "100", "30"  # more than 4 KiB
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"the disk is full while writing {out}" in err and "run the same command again" in err, err
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or ".new" in p.name]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_real_read_only_filesystem_is_one_clear_error(command, llama_dir, cli_files, tmpfs, capsys):
    """Mounted read-only, which binds root too: each command names what it could not write."""
    out = tmpfs("1m", read_only=True)
    argv, named = _commands(str(llama_dir), cli_files, str(out))[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"cannot write {named}" in err and "Choose a directory you can write to" in err, err

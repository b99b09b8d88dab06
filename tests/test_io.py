"""Atomic writes: a directory replaced under a kill at any instant is found complete afterwards."""

from __future__ import annotations

import os

import pytest

from interlingua import _io
from interlingua.errors import InterlinguaError


def _write_version(directory, version: str) -> None:
    """A directory of three files that all name ``version`` (a torn mix shows up as two versions)."""
    for name in ("a.json", "b.json", "c.json"):
        _io.write_json(directory / name, {"version": version})


def _versions(directory) -> set[str] | None:
    """The versions the directory's files name, or None if a file is missing."""
    try:
        return {_io.read_json(directory / n)["version"] for n in ("a.json", "b.json", "c.json")}
    except FileNotFoundError:
        return None


def test_replaced_directory_is_whole_after_a_kill_at_any_instant(tmp_path, kill_instants):
    root = tmp_path / "out"
    with _io.atomic_dir(root / "target") as tmp:
        _write_version(tmp, "old")
    (root / "notes.txt").write_text("the user's")

    def replace():
        with _io.atomic_dir(root / "target") as tmp:
            _write_version(tmp, "new")

    shots = kill_instants(root, replace)
    assert len(shots) >= 8
    seen = []
    for shot in shots:
        found = _io.recover_dir(shot / "target")
        assert found == shot / "target"
        seen.append(_versions(found))
        assert seen[-1] in ({"old"}, {"new"}), (shot, sorted(p.name for p in shot.iterdir()))
        # the next save into the same place works, and the job's cleanup leaves only finished files
        with _io.atomic_dir(shot / "target") as tmp:
            _write_version(tmp, "next")
        _io.remove_leftovers(shot, {"target"}.__contains__)
        assert sorted(p.name for p in shot.iterdir()) == ["notes.txt", "target"]
        assert _versions(shot / "target") == {"next"}
    assert {"old"} in seen and {"new"} in seen
    assert _versions(root / "target") == {"new"}
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "target"]


def test_first_save_killed_before_it_lands_is_rolled_forward(tmp_path, kill_instants):
    root = tmp_path / "out"
    root.mkdir()

    def save():
        with _io.atomic_dir(root / "target") as tmp:
            _write_version(tmp, "new")

    states = [_versions(_io.recover_dir(shot / "target")) for shot in kill_instants(root, save)]
    assert set(map(frozenset, filter(None, states))) == {frozenset({"new"})}
    assert states[-1] == {"new"} and states[0] is None  # before anything is complete there is nothing


def test_leftover_names_belong_to_exactly_one_final_name():
    assert _io.parse_leftover(".checkpoint.k2x_9q0a.tmp") == ("checkpoint", "tmp")
    assert _io.parse_leftover(".resid_post.30.ab12cd34.tmp") == ("resid_post.30", "tmp")
    assert _io.parse_leftover(".shard-00003.safetensors.zz_0abcd.tmp") == ("shard-00003.safetensors", "tmp")
    assert _io.parse_leftover(".checkpoint.old.0a1b2c3d") == ("checkpoint", "old")
    assert _io.parse_leftover(".checkpoint.trash.0a1b2c3d") == ("checkpoint", "trash")
    for foreign in ("checkpoint", ".checkpoint", ".checkpoint.tmp", "notes.k2x_9q0a.tmp", ".x.abc.tmp",
                    ".checkpoint.old.XYZ", ".checkpoint.old.0a1b2c3d.bak"):
        assert _io.parse_leftover(foreign) is None, foreign


def test_remove_leftovers_touches_only_its_own_names(tmp_path):
    for name in (".checkpoint.k2x_9q0a.tmp", ".other.k2x_9q0a.tmp", "notes.txt", ".hidden",
                 ".sae.old.0a1b2c3d"):
        (tmp_path / name).mkdir() if name.startswith(".sae") else (tmp_path / name).write_text("x")
    removed = _io.remove_leftovers(tmp_path, {"checkpoint", "sae"}.__contains__)
    # the set-aside SAE is the only copy of the missing "sae": kept, and recover_dir puts it back
    assert removed == [".checkpoint.k2x_9q0a.tmp"]
    assert _io.recover_dir(tmp_path / "sae") == tmp_path / "sae" and (tmp_path / "sae").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", ".other.k2x_9q0a.tmp", "notes.txt", "sae"]


def test_atomic_dir_refuses_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InterlinguaError, match="working directory"):
        with _io.atomic_dir("."):
            pass
    assert tmp_path.is_dir()


def test_safetensors_own_temporary_file_is_written_where_a_rerun_cleans_it(tmp_path, monkeypatch):
    """safetensors writes through ``.tmpXXXXXX`` beside the path it is given; a kill there left a stray
    file in an extraction cache that no rerun removed. It must be given a path inside one of our own
    temporary directories, which :func:`_io.remove_leftovers` recognises and removes."""
    import torch

    real, given = _io.save_file, []

    def recording(tensors, path, metadata=None):
        given.append(path)
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(_io, "save_file", recording)
    _io.write_safetensors(tmp_path / "out" / "x.safetensors", {"x": torch.ones(3)}, {"b": "1", "a": "2"})
    (private,) = {os.path.dirname(p) for p in given}
    assert _io.parse_leftover(os.path.basename(private)) == ("x.safetensors", "tmp")
    assert os.path.dirname(private) == str(tmp_path / "out")
    (tmp_path / "out" / "stray").mkdir()
    os.replace(tmp_path / "out" / "stray", private)  # what a kill inside save_file would leave behind
    _io.remove_leftovers(tmp_path / "out", lambda name: name == "x.safetensors")
    assert sorted(e.name for e in (tmp_path / "out").iterdir()) == ["x.safetensors"]

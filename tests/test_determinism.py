"""Identical runs write identical bytes: safetensors metadata in sorted order, figures written atomically."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import interlingua
from interlingua import _io

SRC = str(Path(interlingua.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_identical_extractions_are_byte_identical(llama_dir, tmp_path):
    """Separate processes (each with its own hash seeds), the same command: the same bytes in every file."""
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(f"Line {i}: the cat and the dog walked to the river." for i in range(12)) + "\n")
    for out in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "interlingua", "extract", "--model", str(llama_dir),
                               "--hook", "resid_post.1", "--hook", "mlp_out.2", "--text-file", str(texts),
                               "--shard-tokens", "30", "--dtype", "float32", "--out", str(tmp_path / out), "--json"],
                              env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len([n for n in a if n.startswith("shard-")]) >= 5  # several chances for the metadata order to differ
    assert a.keys() == b.keys()
    assert [n for n in a if a[n] != b[n]] == []


def _metadata_keys(path: Path) -> list[str]:
    """The metadata keys of a safetensors file in the order its header stores them."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        return list(json.loads(fh.read(size))["__metadata__"])


def test_safetensors_metadata_is_written_in_sorted_order(tmp_path):
    meta = {k: f"value of {k} ü \n \"quoted\"" for k in ("zeta", "alpha", "tokens", "meta", "format", "texts")}
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.bfloat16)}
    _io.write_safetensors(tmp_path / "x.safetensors", tensors, meta)
    assert _metadata_keys(tmp_path / "x.safetensors") == sorted(meta)
    back = load_file(str(tmp_path / "x.safetensors"))
    assert torch.equal(back["a"], tensors["a"]) and torch.equal(back["b"], tensors["b"])
    with _io.open_safetensors(tmp_path / "x.safetensors", "") as fh:
        assert fh.metadata() == meta


def test_figures_are_written_atomically(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = _io.save_figure(fig, tmp_path / "plot.png", dpi=50)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the format follows the final name, not the temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]

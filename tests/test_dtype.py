"""The compute dtype from the hardware: ``auto`` is bfloat16 only where the CPU or GPU runs it natively."""

from __future__ import annotations

import argparse

import pytest
import torch

from interlingua.cli import build_parser
from interlingua.errors import InterlinguaError
from interlingua.models import dtype as dt
from interlingua.models import load_model
from interlingua.sae.data import TensorSource
from interlingua.sae.train import TrainConfig, Trainer

AVX2_FLAGS = "fpu vme de pse tsc msr pae mce sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2"
SPR_FLAGS = AVX2_FLAGS + " avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Set what this CPU looks like: ``cpu(flags, capability)``; ``flags=None`` removes /proc/cpuinfo."""

    def set_cpu(flags: str | None, capability: str = "AVX2", torch_bf16: bool | None = False):
        path = tmp_path / "cpuinfo"
        path.unlink(missing_ok=True)
        if flags is not None:
            path.write_text("processor\t: 0\nvendor_id\t: FakeCPU\n"
                            f"flags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(dt, "CPUINFO", path)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        for fn in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            if torch_bf16 is None:  # a torch without these private checks
                monkeypatch.delattr(torch.cpu, fn, raising=False)
            else:
                monkeypatch.setattr(torch.cpu, fn, lambda v=torch_bf16: v, raising=False)

    return set_cpu


def test_avx2_cpu_gets_float32_with_the_reason(cpu):
    cpu(AVX2_FLAGS, "AVX2", torch_bf16=True)  # /proc/cpuinfo wins over torch's checks where it exists
    choice = dt.auto_dtype()
    assert choice.dtype == torch.float32 and choice.name == "float32"
    assert choice.reason.startswith("float32:") and "no AVX-512 BF16 / AMX" in choice.reason
    assert "capability AVX2" in choice.reason
    assert dt.resolve_dtype("auto") == torch.float32


def test_avx512_without_bf16_gets_float32(cpu):
    cpu(AVX2_FLAGS + " avx512f avx512bw avx512vl", "AVX512")
    assert dt.auto_dtype().dtype == torch.float32


@pytest.mark.parametrize("flag,name", [("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX")])
def test_bf16_cpu_gets_bfloat16(cpu, flag, name):
    cpu(f"{AVX2_FLAGS} avx512f {flag}", "AVX512")
    choice = dt.auto_dtype("cpu")
    assert choice.dtype == torch.bfloat16 and choice.reason.startswith("bfloat16:")
    assert name in choice.reason and "capability AVX512" in choice.reason
    assert dt.resolve_dtype("auto") == torch.bfloat16


def test_sapphire_rapids_names_both(cpu):
    cpu(SPR_FLAGS, "AVX512")
    assert "AVX-512 BF16 and AMX" in dt.auto_dtype().reason


def test_arm_features_line_is_read(cpu, tmp_path):
    cpu(None, "SVE256")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    choice = dt.auto_dtype()
    assert choice.dtype == torch.float32 and "capability SVE256" in choice.reason


@pytest.mark.parametrize("torch_bf16,expected", [(True, torch.bfloat16), (False, torch.float32),
                                                 (None, torch.float32)])
def test_without_cpuinfo_torch_decides(cpu, torch_bf16, expected):
    """macOS and other systems without /proc/cpuinfo: torch's own CPU feature checks, else float32."""
    cpu(None, "DEFAULT", torch_bf16=torch_bf16)
    choice = dt.auto_dtype()
    assert choice.dtype == expected
    if torch_bf16 is None:
        assert "cannot tell" in choice.reason


def test_cuda_follows_bf16_support(monkeypatch, cpu):
    cpu(SPR_FLAGS, "AVX512")  # the CPU's flags must not matter on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = dt.auto_dtype("cuda")
    assert choice.dtype == torch.bfloat16 and "Fake GPU" in choice.reason
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dt.resolve_dtype("auto", torch.device("cuda:0")) == torch.float32
    assert dt.auto_dtype("cuda").reason.startswith("float32:")


def test_cuda_without_a_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InterlinguaError, match="no CUDA GPU.*device 'cpu'"):
        dt.auto_dtype("cuda")


def test_other_devices_get_float32():
    assert dt.auto_dtype("meta").dtype == torch.float32


def test_explicit_names_and_errors():
    assert dt.resolve_dtype("float32") == torch.float32 and dt.resolve_dtype("bfloat16") == torch.bfloat16
    assert dt.resolve_dtype(torch.float16) == torch.float16
    with pytest.raises(InterlinguaError, match="unknown dtype 'int3'; choose one of auto, float32"):
        dt.resolve_dtype("int3")


def test_load_model_defaults_to_auto(cpu, llama_dir):
    cpu(SPR_FLAGS, "AVX512")
    assert load_model(str(llama_dir)).dtype == torch.bfloat16
    cpu(AVX2_FLAGS, "AVX2")
    assert load_model(str(llama_dir)).dtype == torch.float32


def test_sae_trainer_auto_uses_the_same_choice(cpu):
    source = TensorSource({"a": torch.randn(256, 8)}, chunk_rows=256)
    cfg = TrainConfig(d_sae=16, k=2, batch_size=64, total_vectors=128)
    assert cfg.compute_dtype == "auto"
    cpu(SPR_FLAGS, "AVX512")
    assert Trainer(source, cfg).compute_dtype == torch.bfloat16
    cpu(AVX2_FLAGS, "AVX2")
    assert Trainer(source, cfg).compute_dtype == torch.float32
    with pytest.raises(InterlinguaError, match="compute dtype must be auto, float32, bfloat16"):
        TrainConfig(compute_dtype="float16")


def _dtype_options(parser: argparse.ArgumentParser, path: str = "interlingua"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _dtype_options(sub, f"{path} {name}")
        elif action.dest in ("dtype", "compute_dtype"):
            yield path, action


def test_every_dtype_option_defaults_to_auto():
    found = list(_dtype_options(build_parser()))
    commands = {path for path, _ in found}
    assert {"interlingua extract", "interlingua sample", "interlingua concept find", "interlingua translate",
            "interlingua demo", "interlingua steer", "interlingua sae train", "interlingua sae eval",
            "interlingua sae match"} <= commands
    for path, action in found:
        assert action.default == "auto" and tuple(action.choices) == dt.DTYPE_CHOICES, path

"""The compute dtype, chosen from the hardware: ``auto`` is bfloat16 only where bfloat16 is fast.

A bfloat16 matmul is fast on a CUDA GPU that supports it and on a CPU with AVX-512 BF16 or AMX
instructions. Elsewhere the CPU emulates it: on an AVX2 CPU (AMD Zen 2) a bf16 matmul measured
0.49 GFLOP/s against 43 GFLOP/s in float32, about 90× slower, so there ``auto`` is float32.
Every ``--dtype`` of the command line offers :data:`DTYPE_CHOICES` and defaults to ``auto``;
``interlingua models`` prints :func:`auto_dtype`'s choice and its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from interlingua.errors import InterlinguaError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", "float32", "bfloat16")  # what every --dtype option offers; default "auto"
DTYPE_HELP = ("model dtype (default auto: bfloat16 where this machine runs it natively, else float32; "
              "`interlingua models` shows which and why)")
BF16_CPU_FLAGS = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX"}  # /proc/cpuinfo flag → name
CPUINFO = Path("/proc/cpuinfo")


class DtypeChoice(NamedTuple):
    """A dtype chosen for this machine, with the reason in words (for ``interlingua models``)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def auto_dtype(device: str | torch.device = "cpu") -> DtypeChoice:
    """What ``auto`` means on ``device`` here: bfloat16 where the hardware runs it natively, else float32.

    CUDA: bfloat16 if ``torch.cuda.is_bf16_supported()``. CPU: bfloat16 if the CPU has AVX-512
    BF16 or AMX, read from the ``/proc/cpuinfo`` flags (Linux) or, where there is no such file,
    from torch's own CPU feature checks; float32 when neither can tell. Any other device: float32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InterlinguaError(f"device '{device}' was asked for, but torch sees no CUDA GPU here; "
                                   "use device 'cpu' or install a CUDA build of torch.")
        gpu = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return DtypeChoice(torch.bfloat16, f"bfloat16: the CUDA GPU ({gpu}) supports bfloat16")
        return DtypeChoice(torch.float32, f"float32: the CUDA GPU ({gpu}) does not support bfloat16")
    if device.type != "cpu":
        return DtypeChoice(torch.float32, f"float32: auto picks bfloat16 only on CUDA GPUs and CPUs with "
                                          f"AVX-512 BF16 / AMX, not on '{device.type}'")
    capability = torch.backends.cpu.get_cpu_capability()
    flags = _cpu_flags()
    if flags is not None:
        found = [name for flag, name in BF16_CPU_FLAGS.items() if flag in flags]
    else:
        found = _torch_bf16_features()
    if found:
        return DtypeChoice(torch.bfloat16, f"bfloat16: this CPU has {' and '.join(found)} "
                                           f"(capability {capability})")
    if flags is None and not _torch_can_tell():
        return DtypeChoice(torch.float32, f"float32: cannot tell whether this CPU has AVX-512 BF16 / AMX "
                                          f"(no {CPUINFO}; capability {capability}); bfloat16 may be emulated "
                                          "and much slower")
    return DtypeChoice(torch.float32, f"float32: this CPU has no AVX-512 BF16 / AMX (capability {capability}); "
                                      "bfloat16 matmuls would be emulated, ~90x slower (measured on AVX2)")


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """A torch dtype from a name (``auto``, ``float32``, ``bfloat16``, ``float16``) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return auto_dtype(device).dtype
    if dtype not in DTYPES:
        raise InterlinguaError(f"unknown dtype '{dtype}'; choose one of auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def _cpu_flags() -> set[str] | None:
    """The CPU feature flags of ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``); None without that file."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _torch_bf16_features() -> list[str]:
    """AVX-512 BF16 / AMX as torch's CPU feature checks see them (private API: absent → nothing found)."""
    checks = {"AVX-512 BF16": "_is_avx512_bf16_supported", "AMX": "_is_amx_tile_supported"}
    return [name for name, fn in checks.items() if getattr(torch.cpu, fn, lambda: False)()]


def _torch_can_tell() -> bool:
    return hasattr(torch.cpu, "_is_avx512_bf16_supported")

"""llama.cpp GGUF control vectors: export a steering vector, import one, steer with it.

The file format (read by llama.cpp's ``--control-vector`` / ``--control-vector-scaled``, written
and read by repeng, read by EasySteer):

* key ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the model's
  architecture, informational), ``controlvector.layer_count`` (the number of direction tensors);
* one F32 1-D tensor ``direction.<k>`` of the model's width per steered layer, ``k >= 1``;
  llama.cpp refuses a file containing ``direction.0``.

**Which layer index is which hook point.** llama.cpp's loader puts ``direction.k`` at
``tensors[k]`` (``common_control_vector_load_one`` fills ``data[(k-1)·n_embd …]``, and
``llama_adapter_cvec::apply`` copies ``data + n_embd·(il-1)`` into ``tensors[il]``); each model
graph then calls ``cvec.apply_to(ctx, cur, il)`` on ``cur`` = the output of block ``il``
(0-based, the tensor it names ``l_out-il``), at every position. So

    direction.k  ==  added to interlingua's ``resid_post.k``  (== ``resid_pre.{k+1}``), all tokens,

for ``k = 1 … n_layers-1``: the output of block 0 cannot be steered from a file (there is no
``direction.0``), and nothing is added before block 0. repeng's layer ids follow the same
convention (it wraps ``model.layers[k]`` and adds to its output). A file's vectors are added
as they are (llama.cpp's ``--control-vector-scaled FILE S`` multiplies them by ``S``), so this
module exports the *absolute* vector: strength and typical norm are already folded in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from interlingua import _io
from interlingua.errors import InterlinguaError
from interlingua.steer.interventions import Intervention, add, bind

ARCH = "controlvector"


def layer_of_hook(model, hook: str) -> int:
    """The control-vector layer index ``k`` (``direction.k``) for a hook point, or a clear error."""
    point = model.hook(hook)
    if point.kind == "resid_post":
        k = point.layer
    elif point.kind == "resid_pre":
        k = point.layer - 1
    else:
        raise InterlinguaError(
            f"a llama.cpp control vector adds to the output of a whole block (resid_post.k); {point.name} is "
            "inside a block and cannot be exported. Steer at a resid_post hook to export."
        )
    if k < 1:
        raise InterlinguaError(
            f"{point.name} is the output of block 0, which llama.cpp control vectors cannot steer (direction.0 "
            "is invalid; direction.k is added to resid_post.k for k >= 1). Choose resid_post.1 or later."
        )
    return k


@dataclass
class ControlVector:
    """Per-layer vectors; ``directions[k]`` is added to ``resid_post.k`` at every token."""

    directions: dict[int, torch.Tensor]
    model_hint: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise InterlinguaError("a control vector needs at least one layer.")
        widths = {int(v.shape[-1]) for v in self.directions.values()}
        if len(widths) != 1 or any(v.dim() != 1 for v in self.directions.values()):
            raise InterlinguaError(f"control-vector directions must be 1-D vectors of one width, got widths {sorted(widths)}.")
        bad = [k for k in self.directions if int(k) < 1]
        if bad:
            raise InterlinguaError(f"control-vector layer {bad[0]} is invalid: layers count from 1 (direction.0 "
                                   "does not exist in llama.cpp's format).")
        for k, v in self.directions.items():
            if not bool(torch.isfinite(v).all()):
                raise InterlinguaError(f"control-vector direction.{k} contains NaN or infinite values.")

    @property
    def width(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    @classmethod
    def from_interventions(cls, model, interventions: Intervention | list[Intervention], **metadata) -> ControlVector:
        """The control vector that reproduces additive interventions at resid_post / resid_pre hooks.

        Strengths are resolved on ``model`` (relative strength × typical norm), so the file holds
        exactly the vector that is added. Interventions at one layer are summed.
        """
        if isinstance(interventions, Intervention):
            interventions = [interventions]
        directions: dict[int, torch.Tensor] = {}
        for iv in interventions:
            if iv.op != "add":
                raise InterlinguaError(f"only additive steering can be exported as a control vector, not '{iv.op}'.")
            if iv.positions != "all" or iv.tokens is not None:
                raise InterlinguaError(
                    "llama.cpp adds a control vector at every token; export interventions with positions='all' "
                    "and no tokens= mask."
                )
            k = layer_of_hook(model, iv.hook)
            delta = bind(model, iv).delta.float()
            directions[k] = directions[k] + delta if k in directions else delta
        meta = {"interlingua.model": model.name, "interlingua.hook_convention": "direction.k is added to resid_post.k",
                "interlingua.interventions": json.dumps([iv.describe() for iv in interventions]), **metadata}
        return cls(directions=directions, model_hint=model.architecture, metadata=meta)

    def interventions(self, model, strength: float = 1.0) -> list[Intervention]:
        """Additive interventions that do what llama.cpp does with this file scaled by ``strength``."""
        if self.width != model.d_model:
            raise InterlinguaError(f"this control vector has width {self.width}; {model.name} has width {model.d_model}.")
        too_deep = [k for k in self.directions if k >= model.n_layers]
        if too_deep:
            raise InterlinguaError(f"the control vector has direction.{too_deep[0]}, but {model.name} has only "
                                   f"{model.n_layers} blocks (direction.1 … direction.{model.n_layers - 1}).")
        return [add(v, strength, hook=f"resid_post.{k}", scale="raw") for k, v in sorted(self.directions.items())]

    def save(self, path: str | Path) -> Path:
        """Write the GGUF file (atomically): F32 tensors ``direction.k`` in ascending ``k``."""
        import gguf

        path = Path(path)
        with _io.atomic_path(path) as tmp:
            writer = gguf.GGUFWriter(str(tmp), ARCH)
            writer.add_string(f"{ARCH}.model_hint", self.model_hint)
            writer.add_uint32(f"{ARCH}.layer_count", len(self.directions))
            for key, value in self.metadata.items():
                _add_value(writer, key, value)
            for k in sorted(self.directions):
                writer.add_tensor(f"direction.{k}", self.directions[k].detach().cpu().float().numpy().astype("<f4"))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
        return path

    @classmethod
    def load(cls, path: str | Path) -> ControlVector:
        """Read a GGUF control vector (ours, repeng's or llama.cpp's) and check it as llama.cpp does."""
        import gguf

        path = Path(path)
        if not path.is_file():
            raise InterlinguaError(f"{path} does not exist.")
        try:
            reader = gguf.GGUFReader(str(path))
        except Exception as exc:  # noqa: BLE001 - the gguf package raises plain ValueError/struct errors
            raise InterlinguaError(f"{path} is not a readable GGUF file ({exc}).") from exc
        fields = {k: _field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
        arch = fields.get("general.architecture")
        if arch != ARCH:
            raise InterlinguaError(f"{path} is not a control vector (general.architecture is {arch!r}, not '{ARCH}').")
        directions: dict[int, torch.Tensor] = {}
        for t in reader.tensors:
            name = t.name
            prefix, _, idx = name.partition(".")
            if prefix != "direction" or not idx.isdigit():
                raise InterlinguaError(f"{path}: unexpected tensor '{name}' (a control vector holds direction.<k>).")
            if int(idx) == 0:
                raise InterlinguaError(f"{path}: direction.0 is invalid (llama.cpp refuses it; layers count from 1).")
            if t.tensor_type != gguf.GGMLQuantizationType.F32 or len(t.shape) != 1:
                raise InterlinguaError(f"{path}: {name} must be a 1-D F32 tensor.")
            directions[int(idx)] = torch.from_numpy(np.array(t.data, dtype="<f4", copy=True))
        hint = fields.pop(f"{ARCH}.model_hint", "")
        fields.pop(f"{ARCH}.layer_count", None)
        fields.pop("general.architecture", None)
        return cls(directions=directions, model_hint=hint or "", metadata=fields)


def strength_metadata(file_name: str, hook: str, strength: float, typical_norm: float, chosen_by: str,
                      sweep: list[dict] | None = None) -> dict:
    """GGUF metadata saying at which strength the vector is stored, why, and how llama.cpp should load it.

    The file holds the vector already scaled (``strength × typical_norm × unit direction``), so
    llama.cpp's ``--control-vector FILE`` (scale 1) steers as interlingua measured;
    ``--control-vector-scaled FILE X`` multiplies it by X.
    """
    meta = {
        "interlingua.hook": hook,
        "interlingua.strength": float(strength),
        "interlingua.strength_scale": "relative: x the typical activation norm at the hook",
        "interlingua.typical_norm": float(typical_norm),
        "interlingua.chosen_by": chosen_by,
        "interlingua.llama_cpp": llama_cpp_command(file_name, strength),
    }
    if sweep is not None:
        meta["interlingua.sweep"] = json.dumps(sweep)
    return meta


def llama_cpp_command(file_name: str, strength: float) -> str:
    """The llama.cpp command line that steers with an exported file as interlingua measured it."""
    return (f'llama-completion -m MODEL.gguf --control-vector {file_name} -p "..."  (stored at strength {strength:g} '
            f"x typical norm; --control-vector-scaled {file_name} X multiplies it by X)")


def _add_value(writer, key: str, value) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_int64(key, value)
    elif isinstance(value, float):
        writer.add_float64(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    else:
        writer.add_string(key, json.dumps(value))


def _field_value(f):
    try:
        return f.contents()
    except Exception:  # noqa: BLE001 - older gguf versions have no contents()
        return None

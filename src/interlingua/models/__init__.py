"""Models stage: load a model by name and address its internals through named hook points."""

from interlingua.models.dtype import DTYPE_CHOICES, auto_dtype, resolve_dtype
from interlingua.models.hooks import HookPoint, capturing, hooked, stopping
from interlingua.models.loaded import LoadedModel
from interlingua.models.loading import cache_dir, load_model, load_tokenizer
from interlingua.models.registry import BUNDLED

__all__ = ["BUNDLED", "DTYPE_CHOICES", "HookPoint", "LoadedModel", "auto_dtype", "cache_dir", "capturing", "hooked",
           "load_model", "load_tokenizer", "resolve_dtype", "stopping"]

"""`LoadedModel`: a model, its tokenizer and its hook points, whatever it was loaded from."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interlingua.models.hooks import HookPoint, all_hook_points, find_layers, parse_hook


@dataclass
class LoadedModel:
    """A causal language model ready for hooking.

    ``name`` is what the user called it (``smollm2-135m``, a path, a hub id); ``source``
    records where the weights actually came from, for provenance.
    """

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            # Padding positions are masked out; any id will do, the EOS token is conventional.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.convert_ids_to_tokens(0)

    @classmethod
    def from_pretrained_objects(
        cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str = "model"
    ) -> LoadedModel:
        """Wrap a model and tokenizer you already have in memory (e.g. built in a test)."""
        return cls(name=name, model=model, tokenizer=tokenizer, source="in-memory")

    @property
    def n_layers(self) -> int:
        return len(find_layers(self.model))

    @property
    def d_model(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.get_text_config().vocab_size)

    @property
    def context_length(self) -> int:
        cfg = self.model.config.get_text_config()
        return int(getattr(cfg, "max_position_embeddings", None) or self.tokenizer.model_max_length)

    @property
    def architecture(self) -> str:
        return str(self.model.config.model_type)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hook_points(self) -> list[str]:
        return all_hook_points(self.n_layers)

    def hook(self, name: str | HookPoint) -> HookPoint:
        """Validate a hook point name; an unknown one fails with the list of valid names."""
        if isinstance(name, HookPoint):
            return name
        return parse_hook(name, self.n_layers, self.name)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "architecture": self.architecture,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

"""`Concept`: a readout found in one model, with its evidence, saved as safetensors + JSON."""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path

import torch

from interlingua import _io
from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.results import Record, record

FORMAT = "interlingua.concept"
FORMAT_VERSION = 1
_TENSORS = ("weight", "mean", "std")
META_FILE = "concept.json"
TENSOR_FILE = "concept.safetensors"
FILES = (META_FILE, TENSOR_FILE)
WHAT = "a saved concept (concept.json + concept.safetensors)"


@record
class ConceptMetrics(Record):
    """How well a concept reads its labels, beside its nulls (:func:`~interlingua.concepts.find.find_concept`).

    AUROC on validation (where the layer was chosen), test and OOD with bootstrap 95% intervals
    over whole pairs, pair accuracy where the texts are pairs, and three nulls on test: the same
    pipeline on shuffled labels, random directions, and the chance band of AUROC for the class
    sizes (mean and central band of each). A translated concept carries only what translation
    measured (its test/OOD AUROC and fidelity, in ``extra``).
    """

    OMIT_NONE = frozenset({
        "method", "hook", "layer", "auroc_val", "auroc_test_ci95", "pair_accuracy_test", "auroc_ood_ci95",
        "pair_accuracy_ood", "auroc_shuffled_labels", "auroc_shuffled_labels_band", "auroc_random_direction",
        "auroc_random_direction_band", "auroc_chance_band", "n_train", "n_test", "n_ood"})

    method: str | None = None
    hook: str | None = None
    layer: int | None = None
    auroc_val: float | None = None
    auroc_test: float | None = None
    auroc_test_ci95: list[float] | None = None
    pair_accuracy_test: float | None = None
    auroc_ood: float | None = None
    auroc_ood_ci95: list[float] | None = None
    pair_accuracy_ood: float | None = None
    auroc_shuffled_labels: float | None = None
    auroc_shuffled_labels_band: list[float] | None = None
    auroc_random_direction: float | None = None
    auroc_random_direction_band: list[float] | None = None
    auroc_chance_band: list[float] | None = None
    n_train: int | None = None
    n_test: int | None = None
    n_ood: int | None = None


@dataclass
class Concept:
    """A concept found in a model: ``score(x) = x · weight + bias`` at ``hook``.

    ``mean`` / ``std`` are the per-dimension statistics of the training activations at the
    hook (for standardising), ``typical_norm`` their median L2 norm (so a steering strength
    can be given relative to it). ``metrics`` holds the evaluation with its nulls, and
    ``provenance`` the data, split, seed, layer sweep and package version it came from.
    """

    name: str
    model_name: str
    hook: str
    method: str
    weight: torch.Tensor
    bias: float
    mean: torch.Tensor
    std: torch.Tensor
    typical_norm: float
    read: str = "last"
    metrics: ConceptMetrics = field(default_factory=ConceptMetrics)
    provenance: dict = field(default_factory=dict)
    model: object | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.metrics, dict):
            self.metrics = ConceptMetrics.from_json(self.metrics)

    @property
    def readout(self) -> Readout:
        return Readout(weight=self.weight, bias=self.bias)

    @property
    def direction(self) -> torch.Tensor:
        """Unit vector of the readout in the model's activation space."""
        return self.readout.direction

    def bind(self, model) -> Concept:
        """Attach the loaded model that :meth:`score` runs (it must be the concept's model)."""
        if getattr(model, "d_model", None) != self.weight.shape[0]:
            raise InterlinguaError(
                f"concept '{self.name}' was found in {self.model_name} (width {self.weight.shape[0]}); "
                f"{getattr(model, 'name', model)} has width {getattr(model, 'd_model', '?')}."
            )
        name = getattr(model, "name", None)
        if name is not None and name != self.model_name:
            raise InterlinguaError(
                f"concept '{self.name}' was found in {self.model_name}, not in {name} (same width, different "
                f"model: its direction means nothing there). Use --source {self.model_name}, or find the concept "
                f"again in {name} (`interlingua concept find --model {name} --concept {self.name}`)."
            )
        self.model = model
        return self

    def _loaded(self):
        if self.model is None:
            from interlingua.models import load_model

            self.model = load_model(self.model_name)
        return self.model

    def score(self, texts: list[str] | str, *, per: str = "text", batch_tokens: int = 4096) -> torch.Tensor | list:
        """Concept scores (logits) of ``texts``.

        ``per="text"`` reads the last token of each text and returns a tensor ``[n]``;
        ``per="word"`` returns, per text, a list of ``(word, start, end, score)`` for every
        word that ends on a token boundary (read at the word's last token).
        """
        from interlingua.activations import at_positions

        if isinstance(texts, str):
            texts = [texts]
        model = self._loaded()
        if per == "text":
            x = at_positions(model, texts, self.hook, batch_tokens=batch_tokens)[self.hook]
            return self.readout(x)
        if per != "word":
            raise InterlinguaError(f"per must be 'text' or 'word', not {per!r}.")
        from interlingua.align import align_words

        al = align_words(texts, {"m": model.tokenizer})
        positions = al.token_index["m"]
        flat = at_positions(model, texts, self.hook, positions, batch_tokens=batch_tokens)[self.hook] \
            if len(al) else torch.empty(0, self.weight.shape[0])
        scores = self.readout(flat).tolist()
        out, k = [], 0
        for t, spans in enumerate(al.words):
            out.append([(texts[t][s:e], s, e, scores[k + i]) for i, (s, e) in enumerate(spans)])
            k += len(spans)
        return out

    # ---- files ------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, overwrite: bool = True) -> Path:
        """Write ``concept.safetensors`` and ``concept.json`` into ``directory`` as one unit.

        Both files are written into a fresh directory that then replaces ``directory``
        (:func:`interlingua._io.atomic_dir`), so a kill never pairs the tensors of one concept with
        the JSON of another. ``directory`` must be new, empty or a saved concept (replaced only
        with ``overwrite``): a directory holding anything else is refused, not emptied.
        """
        directory = Path(directory)
        with _io.writing(directory, beside=True):  # the check and the save, with no other writer in between
            _io.check_replaceable(directory, FILES, WHAT, overwrite=overwrite)
            self._save(directory)
        return directory

    def _save(self, directory: Path) -> None:
        """Write the two files into a fresh directory that replaces ``directory``."""
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "model": self.model_name,
            "hook": self.hook, "method": self.method, "bias": self.bias, "typical_norm": self.typical_norm,
            "read": self.read, "metrics": self.metrics.to_json(), "provenance": self.provenance,
        }
        with _io.atomic_dir(directory) as tmp:
            _io.write_safetensors(tmp / TENSOR_FILE, {k: getattr(self, k) for k in _TENSORS})
            _io.write_json(tmp / META_FILE, meta)

    @classmethod
    def load(cls, directory: str | Path, model=None) -> Concept:
        directory = Path(directory)
        if directory.is_file():
            directory = directory.parent
        directory = _io.recover_dir(directory)  # a kill while it was being replaced leaves a complete copy aside
        meta_path, tensor_path = directory / META_FILE, directory / TENSOR_FILE
        if not meta_path.is_file() or not tensor_path.is_file():
            raise InterlinguaError(f"{directory} holds no saved concept (concept.json + concept.safetensors).")
        remedy = "Find and save the concept again (interlingua concept find --out DIR --overwrite)."
        meta = _io.load_json(meta_path, remedy)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InterlinguaError(f"{meta_path} is not an interlingua concept file.")
        missing = [k for k in ("name", "model", "hook", "method", "bias", "typical_norm") if k not in meta]
        if missing:
            raise InterlinguaError(f"{meta_path} lacks {', '.join(missing)}. {remedy}")
        not_text = [k for k in ("name", "model", "hook", "method") if not isinstance(meta[k], str)]
        not_number = [k for k in ("bias", "typical_norm") if isinstance(meta[k], bool)
                      or not isinstance(meta[k], (int, float)) or not math.isfinite(meta[k])]
        for wrong, what in ((not_text, "text"), (not_number, "a finite number")):
            if wrong:
                raise InterlinguaError(f"{meta_path}: {', '.join(f'{k}={meta[k]!r}' for k in wrong)} "
                                       f"must be {what}. {remedy}")
        if meta.get("read", "last") not in ("last", "words") or not all(
                isinstance(meta.get(k, {}), dict) for k in ("metrics", "provenance")):
            raise InterlinguaError(f"{meta_path}: read must be 'last' or 'words', metrics and provenance JSON "
                                   f"objects. {remedy}")
        with _io.open_safetensors(tensor_path, remedy) as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        absent = [k for k in _TENSORS if k not in tensors]
        if absent:
            raise InterlinguaError(f"{tensor_path} lacks the tensors {', '.join(absent)}. {remedy}")
        shapes = {k: tuple(tensors[k].shape) for k in _TENSORS}
        if any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) != 1:
            raise InterlinguaError(f"{tensor_path}: {', '.join(_TENSORS)} must be vectors of one length, not "
                                   f"{', '.join(f'{k} {list(v)}' for k, v in shapes.items())}. {remedy}")
        _io.check_finite(tensors, tensor_path, remedy)
        concept = cls(name=meta["name"], model_name=meta["model"], hook=meta["hook"], method=meta["method"],
                      bias=meta["bias"], typical_norm=meta["typical_norm"], read=meta.get("read", "last"),
                      metrics=meta.get("metrics", {}), provenance=meta.get("provenance", {}),
                      **{k: tensors[k] for k in _TENSORS})
        return concept.bind(model) if model is not None else concept

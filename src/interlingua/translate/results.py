"""The typed results of a translation (the JSON keys of ``translation.json`` and ``--json``).

:func:`~interlingua.translate.translate.translate_concept` builds these; the report stage
(:mod:`interlingua.report.translation`) reads their attributes. Every record keeps keys it does
not declare in ``extra`` (see :mod:`interlingua.results`), so a control or method with fields of
its own needs no change here: :class:`ControlResult` and :class:`MethodResult` declare what every
control and method has, and renderers iterate over the registered ones.
"""

from __future__ import annotations

from typing import ClassVar

from interlingua.results import Record, record

SPLITS = ("test", "ood")


@record
class NullTest(Record):
    """An observed statistic placed in a null distribution of ``draws`` runs (see ``nulls.null_summary``)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"value", "band", "band_coverage", "max", "median", "runs"})

    p_value: float | None = None
    draws: int = 0
    value: float | None = None
    band: list[float] | None = None
    band_coverage: float | None = None
    max: float | None = None
    median: float | None = None
    runs: list[float] | None = None

    def without_runs(self) -> NullTest:
        return NullTest.from_json({k: v for k, v in self.to_json().items() if k != "runs"})


@record
class SplitResult(Record):
    """A translated score on one labelled split (``EvalSplit.evaluate``): fidelity to A first, then labels."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({
        "fidelity_undefined", "auroc_native_target", "auroc_minus_native", "auroc_minus_native_ci", "recovery",
        "recovery_ci", "recovery_defined_in", "recovery_undefined", "recovery_note"})

    fidelity: float | None = None
    fidelity_ci: list[float] | None = None
    rank_correlation: float | None = None
    a_decides_positive: int = 0
    a_decides_negative: int = 0
    auroc: float | None = None
    auroc_ci: list[float] | None = None
    auroc_source: float | None = None
    auroc_bag_of_words: float | None = None
    fidelity_undefined: str | None = None
    auroc_native_target: float | None = None
    auroc_minus_native: float | None = None
    auroc_minus_native_ci: list[float] | None = None
    recovery: float | None = None
    recovery_ci: list[float] | None = None
    recovery_defined_in: float | None = None
    recovery_undefined: str | None = None
    recovery_note: str | None = None


@record
class ControlResult(Record):
    """One control: what it must do, the statistic, and whether it did (``passed``).

    ``kind`` is ``must_fail`` (``p_value`` against ``draws`` null runs kept per split and
    statistic in ``splits``), ``floor`` (``real`` against the floor's ``value``, with the paired
    ``difference_ci``) or ``positive``. Anything else a control records stays in ``extra``.
    """

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"p_value", "draws", "splits", "difference_ci", "real"})

    kind: str = ""
    statistic: str = ""
    value: float | None = None
    passed: bool = False
    must: str = ""
    p_value: float | None = None
    draws: int | None = None
    real: float | None = None
    difference_ci: list[float] | None = None
    splits: dict[str, dict[str, NullTest]] | None = None

    def null(self, split: str = "test", statistic: str | None = None) -> NullTest | None:
        """The null distribution of ``statistic`` (default: the first tested) on ``split``, if kept."""
        tests = (self.splits or {}).get(split) or {}
        if statistic is None:
            statistic = next(iter(tests), None)
        return tests.get(statistic) if statistic else None


@record
class MethodResult(Record):
    """Another way of carrying A's readout into B, evaluated on the same splits."""

    target_hook: str = ""
    test: SplitResult | None = None
    ood: SplitResult | None = None


@record
class Selection(Record):
    """How B's hook and λ were chosen (a selection criterion, not a held-out estimate)."""

    criterion: str = ""
    folds: int = 0
    hook_b: str = ""
    lam: float = 0.0
    cv_rho: float | None = None
    cv_r2: float | None = None
    lams: list[float] | None = None


@record
class SharedTextInfo(Record):
    """What the readout was fitted on: documents per source, label-free or not, aligned words."""

    documents: int = 0
    per_source: dict[str, int] | None = None
    label_free: bool = True
    aligned_words: int | None = None
    coverage: float | None = None


@record
class Retrieval(Record):
    """Rank of the concept among the built-in concepts' native B directions by standardised cosine."""

    rank: int | None = None
    k: int = 0
    top1: bool = False
    chance_top1: float | None = None
    cosine_true: float | None = None
    nearest: list[list] | None = None


@record
class UnitSearch(Record):
    """B's units (MLP neurons or SAE latents) ranked by correlation with A's score, best one against its null."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({
        "skipped", "n_units", "top", "best_abs_corr", "null_max_abs_corr", "p_value", "above_null",
        "best_unit_auroc_test"})

    skipped: str | None = None
    n_units: int | None = None
    top: list[dict] | None = None
    best_abs_corr: float | None = None
    null_max_abs_corr: NullTest | None = None
    p_value: float | None = None
    above_null: bool | None = None
    best_unit_auroc_test: float | None = None


@record
class Cost(Record):
    seconds: float = 0.0
    seconds_per_step: dict[str, float] | None = None
    tokens_read_source: int = 0
    tokens_read_target: int = 0


@record
class LayerRow(Record):
    """One candidate hook of B: cross-validated ρ and R² with A's score at its best λ."""

    hook_b: str = ""
    cv_rho: float | None = None
    cv_r2: float | None = None
    lam: float | None = None


@record
class LayerPair(Record):
    """Debiased CKA between one hook of A and one of B on the aligned words."""

    hook_a: str = ""
    hook_b: str = ""
    cka_debiased: float | None = None


@record
class SplitScores(Record):
    """Per-text scores on a labelled split: A's score, B's translated score, the label."""

    texts: list[str] | None = None
    labels: list[int] | None = None
    score_a: list[float] | None = None
    score_b: list[float] | None = None


@record
class TokenScores(Record):
    """One text scored at every token by a model: character spans ``[start, end)`` and the score there."""

    model: str = ""
    hook: str = ""
    spans: list[list] | None = None  # [start, end, score]


@record
class Example(Record):
    """A text where the two models agree or disagree most, with both models' per-token scores."""

    split: str = ""
    index: int = 0
    kind: str = ""  # "agree" or "disagree"
    text: str = ""
    score_a: float | None = None
    score_b: float | None = None
    label: int | None = None
    tokens_a: TokenScores | None = None
    tokens_b: TokenScores | None = None


@record
class TranslationMetrics(Record):
    """The headline numbers of a translation, its selection and evidence.

    The JSON also carries flat copies of the split results (``fidelity_test``, ``recovery_ood``,
    …, the keys scripts read before results had types); they are written from :attr:`test` and
    :attr:`ood` by :meth:`to_json` and not read back.
    """

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"sae_latent_search"})
    FLAT: ClassVar[tuple[tuple[str, str, str], ...]] = tuple(
        (key.format(s=split), split, attr) for split in SPLITS for key, attr in (
            ("fidelity_{s}", "fidelity"), ("fidelity_{s}_ci", "fidelity_ci"),
            ("rank_correlation_{s}", "rank_correlation"), ("auroc_transfer_{s}", "auroc"),
            ("auroc_transfer_{s}_ci", "auroc_ci"), ("recovery_{s}", "recovery"), ("recovery_{s}_ci", "recovery_ci"),
            ("auroc_minus_native_{s}_ci", "auroc_minus_native_ci"), ("auroc_bag_of_words_{s}", "auroc_bag_of_words"),
            ("auroc_native_target" if split == "test" else "auroc_native_target_{s}", "auroc_native_target")))

    concept: str = ""
    source: str = ""
    target: str = ""
    source_hook: str = ""
    target_hook: str = ""
    source_layer: int | None = None
    target_layer: int | None = None
    label_free: bool = True
    auroc_source_test: float | None = None
    auroc_source_ood: float | None = None
    native_target_hook: str | None = None
    native_target_layers: list[int] | None = None
    native_target_same_layers: bool | None = None
    test: SplitResult | None = None
    ood: SplitResult | None = None
    selection: Selection | None = None
    shared_text: SharedTextInfo | None = None
    n_words: int = 0
    n_texts: int = 0
    methods: dict[str, MethodResult] | None = None
    retrieval: Retrieval | None = None
    neuron_search: UnitSearch | None = None
    sae_latent_search: UnitSearch | None = None
    cka_debiased_chosen_pair: NullTest | None = None
    config: dict | None = None
    cost: Cost | None = None

    def split(self, name: str) -> SplitResult | None:
        return self.test if name == "test" else self.ood if name == "ood" else None

    def to_json(self) -> dict:
        out = list(super().to_json().items())
        flat = {}
        for key, split, attr in self.FLAT:
            result = self.split(split)
            flat[key] = None if result is None else getattr(result, attr)
        cut = [k for k, _ in out].index("label_free") + 1
        return {**dict(out[:cut]), **flat, **dict(out[cut:])}

    @classmethod
    def from_json(cls, data: dict) -> TranslationMetrics:
        derived = {key for key, _, _ in cls.FLAT} | {f"fidelity_{s}_null" for s in SPLITS}
        return super().from_json({k: v for k, v in data.items() if k not in derived})


@record
class TranslationResult(Record):
    """Everything a translation found, without its two concepts (what the JSON files hold).

    :meth:`to_json` is the flat form ``--json`` prints and the demo keeps per row (the metrics'
    keys at the top, beside ``controls``, the maps, ``scores`` and ``examples``);
    :meth:`file_json` the form of ``translation.json`` (``metrics`` nested). Both carry the
    shuffled-pairing null of fidelity per split as ``fidelity_{split}_null``.
    """

    metrics: TranslationMetrics
    controls: dict[str, ControlResult]
    layer_map: list[LayerRow]
    layer_pair_map: list[LayerPair]
    scores: dict[str, SplitScores]
    examples: list[Example]

    PARTS: ClassVar[tuple[str, ...]] = ("controls", "layer_map", "layer_pair_map", "scores", "examples")

    def fidelity_null(self, split: str) -> NullTest | None:
        shuffled = self.controls.get("shuffled_pairing")
        return shuffled.null(split, "fidelity") if shuffled else None

    def metrics_json(self) -> dict:
        out = self.metrics.to_json()
        for split in SPLITS:
            null = self.fidelity_null(split)
            out[f"fidelity_{split}_null"] = None if null is None else null.without_runs().to_json()
        return out

    def file_json(self) -> dict:
        parts = super().to_json()
        return {**parts, "metrics": self.metrics_json()}

    def to_json(self) -> dict:
        parts = super().to_json()
        parts.pop("metrics")
        return {**self.metrics_json(), **parts}

    @classmethod
    def from_file_json(cls, data: dict) -> TranslationResult:
        """From ``translation.json`` (parts missing from older files are empty)."""
        return cls._from_parts(data.get("metrics", {}), data)

    @classmethod
    def from_json(cls, data: dict) -> TranslationResult:
        """From the flat form."""
        return cls._from_parts({k: v for k, v in data.items() if k not in cls.PARTS}, data)

    @classmethod
    def _from_parts(cls, metrics: dict, data: dict) -> TranslationResult:
        return cls(metrics=TranslationMetrics.from_json(metrics),
                   controls={k: ControlResult.from_json(v) for k, v in data.get("controls", {}).items()},
                   layer_map=[LayerRow.from_json(r) for r in data.get("layer_map", [])],
                   layer_pair_map=[LayerPair.from_json(r) for r in data.get("layer_pair_map", [])],
                   scores={k: SplitScores.from_json(v) for k, v in data.get("scores", {}).items()},
                   examples=[Example.from_json(e) for e in data.get("examples", [])])

"""The typed results of steering: a sweep (``steer.json``) and a causal check (``causal.json``).

:func:`~interlingua.steer.evaluate.sweep` and :func:`~interlingua.steer.causal.causal_check`
build these; the report stage (:mod:`interlingua.report.steer`) reads their attributes. The JSON
keys are the ones ``interlingua steer`` wrote before results had types (see
:mod:`interlingua.results`: keys a record does not declare are kept in ``extra``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from interlingua.results import Record, record

SWEEP_FILE = "steer.json"
CAUSAL_FILE = "causal.json"


@record
class SteerRow(Record):
    """One condition run on the prompts: the judges' scores, the effects, the coherence cost, examples.

    ``condition`` is ``unsteered``, ``prompt`` (the prompt baseline), ``steer`` / ``random`` in a
    sweep and ``translated`` / ``native`` / ``random`` in a causal check. ``behaviour`` and
    ``effect`` are by judge name; an effect is the change from the unsteered mean in units of the
    judge's positive-vs-negative gap. ``examples`` are the first continuations (of the first prompts).

    ``hook``, ``layer``, ``strength`` and ``vector_norm`` are written only where the row has them;
    a key that was written as ``null`` (``layer`` of a control vector applied at several layers) is
    written back as ``null``.
    """

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"hook", "layer", "strength", "vector_norm"})
    none_keys: ClassVar[tuple[str, ...]] = ()  # per instance: optional keys present with the value null

    condition: str = ""
    hook: str | None = None
    layer: int | None = None
    strength: float | None = None
    vector_norm: float | None = None
    behaviour: dict[str, float | None] = dataclasses.field(default_factory=dict)
    token_logodds: float | None = None
    perplexity: float | None = None
    kl: float | None = None
    n_empty: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)
    effect: dict[str, float | None] = dataclasses.field(default_factory=dict)
    token_logodds_effect: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> SteerRow:
        row = super().from_json(data)
        row.none_keys = tuple(k for k in cls.OMIT_NONE if k in data and data[k] is None)
        return row

    def to_json(self) -> dict:
        out = super().to_json()
        if not self.none_keys:
            return out
        names = [f.name for f in dataclasses.fields(self) if f.name != "extra"]
        ordered = {n: out[n] if n in out else None for n in names if n in out or n in self.none_keys}
        return {**ordered, **self.extra}


@record
class JudgeInfo(Record):
    """A detector that judged the text: its name, model and hook, and its positive-vs-negative gap (the unit)."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"read"})

    name: str = ""
    model: str | None = None
    hook: str | None = None
    gap: float | None = None
    read: str | None = None


@record
class SweepSettings(Record):
    """What a sweep was run with (generation settings, the prompts, which tokens were steered)."""

    max_new_tokens: int = 24
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8
    chat: bool = False
    prompts: list[str] = dataclasses.field(default_factory=list)
    positions: str = "all"
    strength_scale: str = "relative (× typical norm at the hook)"


@record
class BestSteer(Record):
    hook: str | None = None
    strength: float | None = None
    effect: dict[str, float | None] = dataclasses.field(default_factory=dict)
    perplexity: float | None = None
    kl: float | None = None


@record
class SweepSummary(Record):
    """Best steering cell, the prompt baseline and the largest random effect, by the first judge."""

    judge: str = ""
    best_steer: BestSteer | None = None
    prompt_effect: float | None = None
    max_abs_random_effect: float | None = None


@record
class SweepResult(Record):
    """A layer × strength sweep (``steer.json``): rows (unsteered, prompt, then steer and random per
    layer × strength), the judges and the settings; ``summary`` is derived from the rows.

    :func:`~interlingua.steer.evaluate.sweep` fills ``rows``, ``judges`` and ``settings``; the
    command adds what was steered (``model``, ``concept``, ``method`` or the ``control_vector``
    file and its ``layers``) and the prompt baseline's ``prompt_prefix``.
    """

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"model", "concept", "method", "control_vector", "layers",
                                                     "prompt_prefix"})

    model: str | None = None
    concept: str | None = None
    method: str | None = None
    control_vector: str | None = None
    layers: list[int] | None = None
    prompt_prefix: str | None = None
    rows: list[SteerRow] = dataclasses.field(default_factory=list)
    judges: list[JudgeInfo] = dataclasses.field(default_factory=list)
    settings: SweepSettings = dataclasses.field(default_factory=SweepSettings)

    def __post_init__(self) -> None:  # plain dicts (older callers, tests) become records
        self.rows = [SteerRow.from_json(r) if isinstance(r, dict) else r for r in self.rows]
        self.judges = [JudgeInfo.from_json(j) if isinstance(j, dict) else j for j in self.judges]
        if isinstance(self.settings, dict):
            self.settings = SweepSettings.from_json(self.settings)

    @property
    def judge(self) -> str | None:
        """The first judge's name: the one the summary and the choice of a strength go by."""
        return self.judges[0].name if self.judges else None

    def row(self, condition: str) -> SteerRow | None:
        return next((r for r in self.rows if r.condition == condition), None)

    def summary(self) -> SweepSummary | None:
        """Best steering cell, the prompt baseline and the largest random effect, by the first judge."""
        j = self.judge
        if j is None:
            return None
        steer = [r for r in self.rows if r.condition == "steer" and r.effect.get(j) is not None]
        rand = [r for r in self.rows if r.condition == "random" and r.effect.get(j) is not None]
        prompt = self.row("prompt")
        best = max(steer, key=lambda r: r.effect[j], default=None)
        return SweepSummary(
            judge=j,
            best_steer=None if best is None else BestSteer(hook=best.hook, strength=best.strength,
                                                           effect=dict(best.effect), perplexity=best.perplexity,
                                                           kl=best.kl),
            prompt_effect=None if prompt is None else prompt.effect.get(j),
            max_abs_random_effect=max((abs(r.effect[j]) for r in rand), default=None))

    def best_row(self) -> SteerRow | None:
        """The steering row the summary picks as best."""
        s = self.summary()
        b = s and s.best_steer
        if not b:
            return None
        return next((r for r in self.rows if r.condition == "steer" and r.hook == b.hook
                     and r.strength == b.strength), None)

    def to_json(self) -> dict:
        out = super().to_json()
        s = self.summary()
        extra = {k: out.pop(k) for k in self.extra}
        return {**out, "summary": {} if s is None else s.to_json(), **extra}

    @classmethod
    def from_json(cls, data: dict) -> SweepResult:
        return super().from_json({k: v for k, v in data.items() if k != "summary"})  # derived from the rows

    def save(self, directory: str | Path) -> Path:
        return self.write(Path(directory) / SWEEP_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        from interlingua import _io

        return cls.from_json(_io.read_json(Path(directory) / SWEEP_FILE))


# ---- the causal check -----------------------------------------------------------------------


@record
class Effects(Record):
    """Effects at the largest strength (the prompt baseline's at none), by one judge."""

    native: float | None = None
    translated: float | None = None
    random: float | None = None
    prompt: float | None = None


@record
class JudgeVerdict(Record):
    """What one judge says: does B's native direction steer, and if so the ratios to its effect."""

    native_steers: bool = False
    reason: str | None = None
    efficacy: float | None = None
    random_efficacy: float | None = None
    prompt_effect: float | None = None
    effects: Effects = dataclasses.field(default_factory=Effects)


@record
class CausalRecord(Record):
    """The causal check of one translated concept (see :mod:`interlingua.steer.causal`).

    The headline ratios (``efficacy``, ``random_efficacy``, ``prompt_effect``, ``native_steers``)
    are the first judge's (A's detector); ``by_judge`` has every judge's.
    """

    concept: str = ""
    source: str = ""
    target: str = ""
    hook: str = ""
    strengths: list[float] = dataclasses.field(default_factory=list)
    typical_norm: float | None = None
    native_method: str | None = None
    efficacy: float | None = None
    random_efficacy: float | None = None
    prompt_effect: float | None = None
    kl_ratio: float | None = None
    kl_ratio_basis: str = ""
    native_steers: bool = False
    by_judge: dict[str, JudgeVerdict] = dataclasses.field(default_factory=dict)
    judges: list[JudgeInfo] = dataclasses.field(default_factory=list)
    prompt_prefix: str | None = None
    targets: dict[str, str] = dataclasses.field(default_factory=dict)
    rows: list[SteerRow] = dataclasses.field(default_factory=list)
    translation: dict | None = None

    def rows_of(self, condition: str) -> list[SteerRow]:
        return [r for r in self.rows if r.condition == condition]


@record
class CausalSummary(Record):
    """Across concepts: how many the native vector steers, and how many of those meet each target.

    JSON keys ``efficacy_at_least_0.5`` and ``random_efficacy_within_0.1`` are not identifiers;
    they are the attributes ``efficacy_at_least_half`` and ``random_efficacy_within_tenth``.
    """

    KEYS: ClassVar[dict[str, str]] = {"efficacy_at_least_half": "efficacy_at_least_0.5",
                                      "random_efficacy_within_tenth": "random_efficacy_within_0.1"}

    concepts: int = 0
    native_steers: int = 0
    efficacy_at_least_half: int = 0
    efficacy_target_met: bool = False
    random_efficacy_within_tenth: int = 0
    kl_ratio_within_2: int = 0

    def to_json(self) -> dict:
        return {self.KEYS.get(k, k): v for k, v in super().to_json().items()}

    @classmethod
    def from_json(cls, data: dict) -> CausalSummary:
        back = {v: k for k, v in cls.KEYS.items()}
        return super().from_json({back.get(k, k): v for k, v in data.items()})


@record
class CausalResult(Record):
    """A causal check of one or more concepts (``causal.json``)."""

    concepts: list[CausalRecord] = dataclasses.field(default_factory=list)
    summary: CausalSummary = dataclasses.field(default_factory=CausalSummary)

    def save(self, directory: str | Path) -> Path:
        return self.write(Path(directory) / CAUSAL_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> CausalResult:
        from interlingua import _io

        return cls.from_json(_io.read_json(Path(directory) / CAUSAL_FILE))

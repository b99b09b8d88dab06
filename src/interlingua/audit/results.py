"""The typed results of an audit (``audit.json`` and ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from interlingua.results import Record, record
from interlingua.translate.results import NullTest


@record
class CalibrationInfo(Record):
    """``f(s_A) = intercept + slope · s_A`` fitted on ``n`` held-out texts; residuals divided by ``scale``."""

    slope: float = 0.0
    intercept: float = 0.0
    scale: float = 1.0
    n: int = 0
    texts: str = ""


@record
class WordScore(Record):
    """One word of an input: characters ``[start, end)``, both models' scores, the disagreement there."""

    start: int = 0
    end: int = 0
    score_a: float | None = None
    score_b: float | None = None
    disagreement: float | None = None


@record
class AuditInput(Record):
    """One candidate input, ranked by how far B's translated score is from what A's score predicts."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"words", "parent"})

    rank: int = 0
    source: str = ""
    text: str = ""
    score_a: float | None = None
    score_b: float | None = None
    expected_b: float | None = None
    residual: float | None = None
    disagreement: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    parent: int | None = None  # for inputs the search made: the input it mutated
    words: list[WordScore] | None = None


@record
class Explanation(Record):
    """One of A's other concepts (or an SAE latent of A) as a predictor of the disagreement."""

    feature: str = ""
    kind: str = ""  # "concept" or "sae_latent"
    auroc: float | None = None  # the feature telling the top disagreements from the other inputs
    p_raw: float | None = None
    p_value: float | None = None  # corrected for every feature tried (max-|ρ| permutation null)
    draws: int = 0
    mean_in_top: float | None = None  # the feature's z-score, mean over the top disagreements


@record
class Group(Record):
    """Top disagreements that share an explanation (the feature is on its explaining side for them)."""

    feature: str = ""
    inputs: list[int] | None = None  # ranks
    mean_disagreement: float | None = None


@record
class Audit(Record):
    """Where A's concept and its translation into B part ways, and which of A's concepts say why."""

    concept: str = ""
    source: str = ""
    target: str = ""
    source_hook: str = ""
    target_hook: str = ""
    calibration: CalibrationInfo | None = None
    word_calibration: CalibrationInfo | None = None
    null: NullTest | None = None  # disagreement of the null texts (runs kept), same code path
    alpha: float = 0.05
    flagged: int = 0  # inputs with q ≤ alpha
    top: int = 0  # the top disagreements that explanations and groups are about
    per_source: dict[str, int] | None = None
    inputs: list[AuditInput] | None = None
    explanations: list[Explanation] | None = None
    groups: list[Group] | None = None
    search: dict | None = None
    settings: dict | None = None
    seconds: float | None = None

    FILE: ClassVar[str] = "audit.json"

    def save(self, directory) -> Path:
        """Write ``audit.json`` into ``directory`` (atomically); its path."""
        return self.write(Path(directory) / self.FILE)

    @classmethod
    def load(cls, directory) -> Audit:
        return cls.read(Path(directory) / cls.FILE, "Run the audit again (interlingua audit --out DIR).")

    def top_inputs(self, k: int = 50) -> list[AuditInput]:
        return (self.inputs or [])[:k]

    def significant(self) -> list[Explanation]:
        return [e for e in self.explanations or [] if e.p_value is not None and e.p_value <= self.alpha]

"""Model diffing: which concepts a fine-tune changed, where, and how often its generations use them.

:func:`diff_models` compares a *base* model with a *tuned* one that shares its tokenizer (a
fine-tune, an organism). For every concept (by default every built-in one):

1. **Find** the concept in the base on a layer grid (``DiffConfig.layers``, default the demo's
   :func:`~interlingua.translate.translate.default_layers`).
2. **Read it in the tuned model with the base's own readout** (same hook, same weights, no fitted
   map): the architectures and tokenizers are the same, so every activation pairs with itself and
   a model diffed against itself disagrees nowhere. A readout *fitted* into the tuned model (a
   translation) fails exactly that control: measured on SmolLM2 against itself, the ridge readout
   fitted on corpus text and the base's probe part ways on text unlike the corpus, and 13 framed
   reviews reached the top 50 of an audit with nothing planted (``benchmarks/results_audit.md``).
   Fidelity is the AUROC of the tuned model's reading against the base's decisions on the
   concept's test and OOD texts.
3. **Audit** that pair of readings (:func:`interlingua.audit.audit`): one held-out split and one
   candidate pool for every concept (same seed and sizes), read by one reader per model across
   concepts, so a text is read once per hook. Recorded: the number of *flagged* inputs
   (BH q ≤ α against the held-out null), the top disagreements and the top explanation.
4. **Prior shift**: ``generations`` texts sampled from each model from the same prompts and
   seed; the fraction of each model's own generations on which the concept fires (score > 0;
   each model reads its own texts with the base concept), a 95 % Wilson interval for each and a Newcombe (hybrid score) interval for the
   difference tuned − base.

**Ranking** (``RANKING``): by *change*, then by 1 − fidelity (test). Change is
``Σ_{flagged} |s_B − f(s_A)| / spread / N``: the audit's flagged inputs (BH q ≤ α against the
held-out null), each counted by how far the tuned model's reading moved from what the base's
predicts, in units of the concept's own spread (``|slope| · sd(s_A)``), per candidate. Every
concept's audit ranks the *same* N candidates against nulls of the *same* held-out texts, so
the numbers compare across concepts. Why not the flagged count alone: significance is relative
to the calibration's residual scale, which is tiny when the two models are nearly the same, so a
concept whose translated readout leaks a trace of a planted direction gets as many flags as the
planted concept (measured on the tiny models: 20 against 21) while its departures are a
thousandth the size. A model diffed against itself flags about nothing (false discoveries at
rate α) and so scores about 0; fidelity on the concept's own labelled texts breaks the ties.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import torch

from interlingua.audit.audit import AuditConfig
from interlingua.audit.results import AuditInput, Explanation
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel
from interlingua.results import Record, record
from interlingua.translate.results import SplitResult, TranslationMetrics

RANKING = ("change, descending: the departures |s_B − f(s_A)| of the audit's flagged inputs (BH q ≤ alpha against "
           "held-out null sentences; every concept's audit ranks the same candidates), summed in units of the concept's "
           "spread and divided by the number of candidates; ties by 1 − fidelity (the tuned model's reading against the "
           "base's decisions on the concept's test texts)")
Z95 = 1.959963984540054


def _default_audit() -> AuditConfig:
    return AuditConfig(calibration_texts=150, null_texts=400, corpus_candidates=300, explain_draws=300,
                       word_inputs=5)


@dataclass(frozen=True)
class DiffConfig:
    """How a diff is run (one object instead of many keyword arguments)."""

    layers: tuple[int, ...] | None = None
    """resid_post layers the concept is found on in the base (default: every third and the last, as the demo)."""
    max_pairs: int = 100
    """first items kept of every split of each concept (0: all)."""
    n_boot: int = 200
    """bootstrap resamples when finding the concept in the base."""
    n_null: int = 4
    """label-shuffle nulls when finding a concept."""
    generations: int = 64
    """texts sampled from each model for the prior shift."""
    max_new_tokens: int = 48
    """tokens each generation adds to its prompt."""
    audit: AuditConfig = field(default_factory=lambda: _default_audit())
    """the audit's settings (its seed is replaced by ``seed``)."""
    audit_generations: bool = False
    """also rank both models' generations in every audit (they are not from the null's distribution)."""
    top_inputs: int = 5
    """top disagreements kept per concept."""
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        for name in ("max_pairs", "n_boot", "n_null", "top_inputs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InterlinguaError(f"{name} must be a whole number ≥ 0, not {value!r}.")
        for name in ("generations", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InterlinguaError(f"{name} must be a whole number ≥ 1, not {value!r}.")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise InterlinguaError(f"layers must be layer numbers 0, 1, 2, …, not {self.layers}.")


@record
class Rate(Record):
    """How often the concept fires (score > 0) on one model's generations, with a 95 % Wilson interval."""

    fires: int = 0
    n: int = 0
    rate: float | None = None
    interval: list[float] | None = None


@record
class PriorShift(Record):
    """The concept's firing rate on each model's own generations and the difference (tuned − base)."""

    base: Rate | None = None
    tuned: Rate | None = None
    difference: float | None = None
    interval: list[float] | None = None  # Newcombe's hybrid score interval (95 %)


@record
class ConceptDiff(Record):
    """One concept: how far the tuned model's concept follows the base's, where not, and the prior shift."""

    concept: str = ""
    rank: int = 0
    base_hook: str | None = None
    tuned_hook: str | None = None
    auroc_base_test: float | None = None
    fidelity_test: float | None = None
    fidelity_ood: float | None = None
    change: float = 0.0  # the ranking statistic: significant departure per candidate, in the concept's spreads
    flagged: int = 0
    candidates: int = 0
    spread: float | None = None  # the spread the departures are measured in: |slope| · sd of the base score
    top_inputs: list[AuditInput] | None = None
    top_explanation: Explanation | None = None
    explanation_significant: bool = False
    prior: PriorShift | None = None
    skipped: str | None = None  # why the concept could not be diffed (e.g. at chance in the base)
    seconds: float | None = None

    @property
    def changed(self) -> bool:
        return self.skipped is None and self.flagged > 0


@record
class ModelDiff(Record):
    """A base model and its fine-tune compared concept by concept, most changed first."""

    base: str = ""
    tuned: str = ""
    ranking: str = RANKING
    alpha: float = 0.05
    generations: int = 0
    concepts: list[ConceptDiff] | None = None
    settings: dict | None = None
    seconds: float | None = None

    FILE: ClassVar[str] = "diff.json"

    def save(self, directory) -> Path:
        """Write ``diff.json`` into ``directory`` (atomically); its path."""
        return self.write(Path(directory) / self.FILE)

    @classmethod
    def load(cls, directory) -> ModelDiff:
        return cls.read(Path(directory) / cls.FILE, "Run the diff again (interlingua diff --out DIR).")

    def ranked(self) -> list[ConceptDiff]:
        return list(self.concepts or [])

    def changed(self) -> list[ConceptDiff]:
        return [c for c in self.concepts or [] if c.changed]


# ---- statistics -----------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``k1/n1 − k2/n2`` (independent samples; method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return (max(-1.0, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)),
            min(1.0, d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)))


def prior_shift(base_scores: torch.Tensor, tuned_scores: torch.Tensor) -> PriorShift:
    """Firing rates (score > 0) of the concept on each model's generations, and their difference."""
    kb, nb = int((base_scores > 0).sum()), len(base_scores)
    kt, nt = int((tuned_scores > 0).sum()), len(tuned_scores)

    def rate(k, n):
        return Rate(fires=k, n=n, rate=round(k / n, 4), interval=[round(v, 4) for v in wilson(k, n)])

    return PriorShift(base=rate(kb, nb), tuned=rate(kt, nt), difference=round(kt / nt - kb / nb, 4),
                      interval=[round(v, 4) for v in newcombe(kt, nt, kb, nb)])


# ---- the diff -------------------------------------------------------------------------------------


def tokenizer_difference(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why the two models' tokenizers differ (vocabulary, special tokens, how a probe is split), or None."""
    if a is b or a.tokenizer is b.tokenizer:
        return None
    ta, tb = a.tokenizer, b.tokenizer
    if ta.get_vocab() != tb.get_vocab():
        return f"their vocabularies differ ({len(ta)} and {len(tb)} tokens)"
    for attr in ("bos_token", "eos_token"):
        if getattr(ta, attr, None) != getattr(tb, attr, None):
            return f"their {attr} differ"
    probe = "The diff's probe: Ελληνικά, 1234, “quotes” and  spaces.\nNew line?"
    if ta(probe)["input_ids"] != tb(probe)["input_ids"]:
        return "they split the same text differently"
    return None


def _datasets(concepts, max_pairs: int):
    from interlingua.concepts.dataset import ConceptDataset, builtin_names, load_concept

    items = builtin_names() if concepts is None else list(concepts)
    if not items:
        raise InterlinguaError("no concepts to diff: give at least one (or none for every built-in concept).")
    out = []
    for c in items:
        ds = c if isinstance(c, ConceptDataset) else load_concept(c)
        out.append(ds.head(max_pairs) if max_pairs else ds)
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise InterlinguaError(f"concepts are named twice: {names}.")
    return out


def change_statistic(result) -> tuple[float, float]:
    """(change, spread) of an audit: ``Σ_{flagged} |s_B − f(s_A)| / spread / N`` over its N candidates.

    ``spread`` is the concept's own range as the calibration carries it into B's units,
    ``|slope| · sd(s_A)`` over the candidates (floored at the calibration's residual scale, so a
    translation that reads nothing does not divide by zero). Only flagged inputs count, so a
    model diffed against itself scores about 0; an input counts by how far it moved, so a change
    that moves the concept by a lot on a few inputs outranks one that barely passes the null on
    the same inputs (e.g. a readout that leaks a little of a planted direction).
    """
    inputs = result.inputs or []
    if not inputs:
        return 0.0, 0.0
    sa = torch.tensor([x.score_a for x in inputs if x.score_a is not None], dtype=torch.float64)
    cal = result.calibration
    sd = float(sa.std()) if len(sa) > 1 else 0.0
    spread = max(abs(cal.slope) * sd, cal.scale, 1e-12)
    moved = sum(abs(x.residual or 0.0) for x in inputs
                if x.q_value is not None and x.q_value <= result.alpha)
    return round(moved / spread / len(inputs), 6), round(spread, 6)


def _rank_key(c: ConceptDiff):
    fid = c.fidelity_test if c.fidelity_test is not None else -math.inf
    return (c.skipped is not None, -c.change, -(1 - fid))


def diff_models(base: LoadedModel, tuned: LoadedModel, *, concepts: Sequence | None = None,
                config: DiffConfig | None = None, texts: Sequence[str] = (),
                features: dict[str, torch.Tensor] | None = None, **overrides) -> ModelDiff:
    """Compare ``tuned`` (a fine-tune of ``base``, same tokenizer) with ``base`` concept by concept.

    ``concepts`` are built-in names, concept files or :class:`~interlingua.concepts.ConceptDataset`
    objects (default: every built-in concept). ``texts`` are extra candidate inputs for every audit;
    ``features`` replaces the audit's explaining features (A's built-in concept directions). The
    result is ranked as :data:`RANKING` says (see the module's docstring).
    """
    from interlingua.activations import Reader
    from interlingua.audit import audit
    from interlingua.concepts import find_concept
    from interlingua.data.sampling import sample_texts
    from interlingua.translate.translate import default_layers

    t_start = time.perf_counter()
    cfg = replace(config or DiffConfig(), **overrides)
    why = tokenizer_difference(base, tuned)
    if why:
        raise InterlinguaError(
            f"{base.name} and {tuned.name} do not share a tokenizer ({why}). diff compares a model with its fine-tune "
            "through an identical alignment; for models with different tokenizers, translate the concept "
            "(interlingua translate) and audit the translation (interlingua audit).")
    if base.n_layers != tuned.n_layers or base.d_model != tuned.d_model:
        raise InterlinguaError(f"{base.name} ({base.n_layers} layers, width {base.d_model}) and {tuned.name} "
                               f"({tuned.n_layers} layers, width {tuned.d_model}) are not the same architecture; "
                               "use translate + audit for different models.")
    datasets = _datasets(concepts, cfg.max_pairs)
    layers = tuple(cfg.layers) if cfg.layers is not None else default_layers(base)
    if max(layers) >= base.n_layers:
        raise InterlinguaError(f"layer {max(layers)} does not exist: {base.name} has {base.n_layers} layers.")
    say = print if cfg.progress else (lambda *a, **k: None)
    limit = min(base.context_length, tuned.context_length)
    reader_b = Reader(base, max_tokens=limit)
    reader_t = reader_b if tuned is base else Reader(tuned, max_tokens=limit)
    acfg = replace(cfg.audit, seed=cfg.seed, progress=False)

    t0 = time.perf_counter()
    gen_b = sample_texts(base, cfg.generations, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    gen_t = gen_b if tuned is base else sample_texts(tuned, cfg.generations, max_new_tokens=cfg.max_new_tokens,
                                                     seed=cfg.seed)
    say(f"sampled {cfg.generations} texts from each model ({time.perf_counter() - t0:.0f} s)")
    candidates = list(dict.fromkeys(list(texts) + (gen_b + gen_t if cfg.audit_generations else [])))

    rows: list[ConceptDiff] = []
    for ds in datasets:
        t0 = time.perf_counter()
        try:
            row = _one(ds, base, tuned, reader_b, reader_t, layers, acfg, cfg, candidates, features, gen_b, gen_t,
                       find_concept, audit)
        except InterlinguaError as exc:
            row = ConceptDiff(concept=ds.name, skipped=str(exc))
        row.seconds = round(time.perf_counter() - t0, 2)
        say(f"  {ds.name}: " + (f"skipped ({row.skipped})" if row.skipped else
                                f"flagged {row.flagged} of {row.candidates}, fidelity {row.fidelity_test}, prior "
                                f"shift {row.prior.difference:+.3f} ({row.seconds:.0f} s)"))
        rows.append(row)
    rows.sort(key=_rank_key)
    for i, r in enumerate(rows):
        r.rank = i
    settings = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k not in ("progress", "audit")}
    settings["layers"] = list(layers)
    settings["audit"] = {k: getattr(acfg, k) for k in acfg.__dataclass_fields__ if k != "progress"}
    settings["user_texts"] = len(texts)
    return ModelDiff(base=base.name, tuned=tuned.name, alpha=acfg.alpha, generations=cfg.generations, concepts=rows,
                     settings=settings, seconds=round(time.perf_counter() - t_start, 2))


def _one(ds, base, tuned, reader_b, reader_t, layers, acfg, cfg, candidates, features, gen_b, gen_t,
         find_concept, audit) -> ConceptDiff:
    from interlingua.translate import Translation

    concept = find_concept(base, ds, layers=layers, n_boot=cfg.n_boot, n_null=cfg.n_null, reader=reader_b,
                           seed=cfg.seed)
    target = replace(concept, model_name=tuned.name, model=None).bind(tuned)
    splits = {s: _fidelity(concept, reader_b, reader_t, ds.split(s).texts) for s in ("test", "ood") if s in ds.splits}
    tr = Translation(source=concept, target=target, metrics=TranslationMetrics(
        concept=ds.name, source=base.name, target=tuned.name, source_hook=concept.hook, target_hook=concept.hook,
        test=splits.get("test"), ood=splits.get("ood")))
    result = audit(tr, base, tuned, acfg, texts=candidates, features=features, reader_a=reader_b, reader_b=reader_t)
    sb = concept.readout(reader_b.read(gen_b, concept.hook)[concept.hook]).double()
    st = concept.readout(reader_t.read(gen_t, concept.hook)[concept.hook]).double()
    top = [AuditInput.from_json(x.to_json()) for x in (result.inputs or [])[:cfg.top_inputs]]
    ex = (result.explanations or [None])[0]
    change, spread = change_statistic(result)
    return ConceptDiff(
        concept=ds.name, base_hook=concept.hook, tuned_hook=concept.hook, auroc_base_test=concept.metrics.auroc_test,
        fidelity_test=splits["test"].fidelity if "test" in splits else None,
        fidelity_ood=splits["ood"].fidelity if "ood" in splits else None,
        change=change, spread=spread, flagged=result.flagged, candidates=len(result.inputs or []), top_inputs=top,
        top_explanation=ex,
        explanation_significant=bool(ex is not None and ex.p_value is not None and ex.p_value <= result.alpha),
        prior=prior_shift(sb, st))


def _fidelity(concept, reader_b, reader_t, texts) -> SplitResult:
    """AUROC of the tuned model's reading of ``concept`` against the base's decisions (score > 0) on ``texts``."""
    from interlingua.metrics import auroc

    sb = concept.readout(reader_b.read(texts, concept.hook)[concept.hook]).double()
    st = concept.readout(reader_t.read(texts, concept.hook)[concept.hook]).double()
    decided = sb > 0
    fid = None if decided.all() or not decided.any() else round(auroc(st, decided), 4)
    return SplitResult(fidelity=fid, fidelity_undefined=None if fid is not None else "the base decides every text alike")

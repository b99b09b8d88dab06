"""Judging steered text: behaviour, coherence cost, and a layer × strength sweep with baselines.

**Behaviour** of a continuation is read two ways:

* a concept *detector* (a :class:`~interlingua.concepts.Concept` of any model: A's detector can
  judge B's text) scores the continuation text on its own, unsteered model; the score is the
  readout averaged over the continuation's tokens (``read="mean"``, robust to where the text
  stops) or read at its last token (``read="last"``, as concepts are fitted). The prompt is left
  out, so a baseline that changes the prompt is judged on what the model wrote, not on what it
  was given. The *effect* of a condition is its mean score minus the unsteered mean, divided by
  the detector's gap between the concept's positive and negative test texts (read the same
  way): 1.0 means "moved as far as from a negative to a positive example".
* the *next-token log-odds*: ``log P(concept words) − log P(opposite words)`` for the next token
  at every generation step, where the word sets are the words found only in the positive (or
  only in the negative) texts of the concept's training split.

**Coherence cost**: perplexity of the continuation under the *unsteered* model, given the plain
prompt; and the KL divergence KL(unsteered ‖ steered) of next-token distributions on neutral
corpus text with the intervention applied at every token.

**Baselines in every table**: the unsteered model, a prompt that asks for the concept (by default
three positive training examples put before the prompt: published results find prompting beats
steering vectors, AxBench 0.894 vs 0.239), and a norm-matched random direction at every layer and
strength, which must do nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from interlingua.errors import InterlinguaError
from interlingua.steer.generate import Generations, encode_prompts, generate, token_set_ids
from interlingua.steer.interventions import Intervention, add, steering
from interlingua.steer.results import JudgeInfo, SteerRow, SweepResult, SweepSettings

DEFAULT_PROMPTS = [
    "I think that",
    "Yesterday I went to",
    "Let me tell you about",
    "My friend told me that",
    "The best thing about the city is",
    "When we arrived at the hotel,",
    "The book was",
    "Today the weather",
]


# ---- detectors ------------------------------------------------------------------------------


def _skip_special(tokenizer) -> int:
    """Leading special tokens the tokenizer adds (BOS): left out of a mean read."""
    return len(tokenizer("")["input_ids"])


def detector_scores(concept, texts: Sequence[str], *, read: str = "mean") -> torch.Tensor:
    """The concept's readout on each text (NaN for an empty text), on the concept's own model."""
    from interlingua.activations import at_positions

    if read not in ("mean", "last"):
        raise InterlinguaError(f"read must be 'mean' or 'last', not {read!r}.")
    model = concept.model
    if model is None:  # a loaded Concept not yet bound: load its own model, as Concept.score does
        from interlingua.models import load_model

        model = concept.bind(load_model(concept.model_name)).model
    skip = _skip_special(model.tokenizer)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    out = torch.full((len(texts),), float("nan"))
    if not keep:
        return out
    sub = [texts[i] for i in keep]
    lengths = [len(ids) for ids in model.tokenizer(sub)["input_ids"]]
    if read == "last":
        positions = [[n - 1] for n in lengths]
    else:
        positions = [list(range(min(skip, n - 1), n)) for n in lengths]
    acts = at_positions(model, sub, concept.hook, positions)[concept.hook]
    scores = concept.readout(acts)
    at = 0
    for i, pos in zip(keep, positions):
        out[i] = scores[at:at + len(pos)].mean()
        at += len(pos)
    return out


@dataclass
class Judge:
    """A detector with a name and its positive-vs-negative gap on the concept's test texts."""

    name: str
    concept: object
    gap: float | None = None
    read: str = "mean"

    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        return detector_scores(self.concept, texts, read=self.read)


def make_judge(name: str, concept, dataset=None, *, read: str = "mean") -> Judge:
    """A :class:`Judge`; with a dataset its gap is measured on the test split (the effect's unit)."""
    gap = None
    if dataset is not None and "test" in dataset.splits:
        test = dataset.split("test")
        s = detector_scores(concept, test.texts, read=read)
        gap = float(s[test.binary].nanmean() - s[~test.binary].nanmean())
        if not math.isfinite(gap) or abs(gap) < 1e-6:
            gap = None
    return Judge(name=name, concept=concept, gap=gap, read=read)


# ---- concept words --------------------------------------------------------------------------


def concept_words(dataset, split: str = "train") -> tuple[list[str], list[str]]:
    """Words found only in the positive texts, and only in the negative texts, of ``split``."""
    data = dataset.split(split)
    words = lambda t: set(re.findall(r"[a-z][a-z']+", t.lower()))  # noqa: E731
    pos = set().union(*(words(t) for t, y in zip(data.texts, data.binary.tolist()) if y))
    neg = set().union(*(words(t) for t, y in zip(data.texts, data.binary.tolist()) if not y))
    return sorted(pos - neg), sorted(neg - pos)


def concept_token_sets(model, dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """First-token ids of the concept's and the opposite words (ids in both sets dropped), or None."""
    pos_w, neg_w = concept_words(dataset)
    if not pos_w or not neg_w:
        return None
    pos, neg = token_set_ids(model, pos_w), token_set_ids(model, neg_w)
    both = set(pos.tolist()) & set(neg.tolist())
    pos = torch.tensor([t for t in pos.tolist() if t not in both], dtype=torch.long)
    neg = torch.tensor([t for t in neg.tolist() if t not in both], dtype=torch.long)
    return (pos, neg) if len(pos) and len(neg) else None


# ---- coherence ------------------------------------------------------------------------------


def continuation_perplexity(model, prompt_ids: Sequence[Sequence[int]], new_ids: Sequence[Sequence[int]]) -> float:
    """exp(mean NLL) of the continuation tokens under the unsteered ``model`` given ``prompt_ids``."""
    total, count = 0.0, 0
    rows = [(list(p), list(n)) for p, n in zip(prompt_ids, new_ids) if n]
    if not rows:
        return float("nan")
    pad = model.tokenizer.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(rows), 8):
            batch = rows[start:start + 8]
            width = max(len(p) + len(n) for p, n in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (p, n) in enumerate(batch):
                ids[i, :len(p) + len(n)] = torch.tensor(p + n)
                mask[i, :len(p) + len(n)] = 1
            logp = torch.log_softmax(model.model(input_ids=ids.to(model.device),
                                                 attention_mask=mask.to(model.device)).logits.float(), -1)
            for i, (p, n) in enumerate(batch):
                pred = logp[i, len(p) - 1:len(p) + len(n) - 1]
                total -= float(pred.gather(1, torch.tensor(n, device=pred.device).unsqueeze(1)).sum())
                count += len(n)
    return math.exp(total / count)


@dataclass
class NeutralText:
    """Neutral corpus text, tokenized once, for the KL side effect of an intervention.

    The unsteered next-token log-probabilities are computed once (at real tokens only) and kept.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    chunk: int
    _base: list[torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, model, texts: Sequence[str] | None = None, *, n_docs: int = 4, max_tokens: int = 32) -> NeutralText:
        from interlingua.data.corpus import load_corpus

        texts = list(texts) if texts else load_corpus("test", max_docs=n_docs)
        rows = [x[:max_tokens] for x in model.tokenizer(texts)["input_ids"]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), model.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        # bound the float32 logits held at once to ~256 MB (Gemma-3's vocabulary is 262k)
        chunk = max(1, int(256e6 // (4 * width * model.vocab_size * 2)))
        return cls(ids=ids, mask=mask, chunk=chunk)

    def _logprobs(self, model, s: int) -> torch.Tensor:
        ids, mask = self.ids[s:s + self.chunk].to(model.device), self.mask[s:s + self.chunk].to(model.device)
        logits = model.model(input_ids=ids, attention_mask=mask).logits.float()
        return torch.log_softmax(logits[mask.bool()], -1)

    def kl(self, model, interventions: Sequence[Intervention]) -> float:
        """Mean over real tokens of KL(unsteered ‖ steered), intervening at every token."""
        everywhere = [dataclasses.replace(iv, positions="all", tokens=None) for iv in interventions]
        starts = range(0, len(self.ids), self.chunk)
        total, count = 0.0, 0
        with torch.inference_mode():
            if self._base is None:
                self._base = [self._logprobs(model, s) for s in starts]
            for s, base in zip(starts, self._base):
                with steering(model, everywhere):
                    steered = self._logprobs(model, s)
                total += float((base.exp() * (base - steered)).sum())
                count += base.shape[0]
        return total / max(count, 1)


# ---- directions per layer -------------------------------------------------------------------


@dataclass
class LayerDirection:
    """A steering direction at one hook and the typical activation norm there."""

    hook: str
    direction: torch.Tensor
    typical_norm: float


def layer_directions(model, dataset, layers: Sequence[int], *, method: str = "diff_of_means") -> list[LayerDirection]:
    """The concept's direction at ``resid_post`` of each layer, fitted on the train split in one pass."""
    from interlingua.activations import at_positions
    from interlingua.concepts.find import fit

    hooks = [model.hook(f"resid_post.{int(i)}").name for i in layers]
    train = dataset.split("train")
    acts = at_positions(model, train.texts, hooks)
    out = []
    for h in hooks:
        readout = fit(method, acts[h], train)
        out.append(LayerDirection(hook=h, direction=readout.direction, typical_norm=float(acts[h].norm(dim=1).median())))
    return out


def random_direction(width: int, seed: int) -> torch.Tensor:
    """A uniformly random unit vector (seeded)."""
    v = torch.randn(width, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def prompt_baseline(prompts: Sequence[str], dataset=None, *, positive: bool = True, prefix: str | None = None,
                    n_examples: int = 3) -> tuple[list[str], str]:
    """Prompts that ask for the concept: ``prefix`` before each prompt; by default ``n_examples``
    training texts of the wanted class, one per line (few-shot priming, which works on base models)."""
    if prefix is None:
        if dataset is None:
            raise InterlinguaError("the prompt baseline needs the concept's dataset or an explicit prefix.")
        train = dataset.split("train")
        want = train.binary if positive else ~train.binary
        examples = [t for t, y in zip(train.texts, want.tolist()) if y][:n_examples]
        prefix = "\n".join(examples) + "\n"
    return [prefix + p for p in prompts], prefix


# ---- evaluating conditions ------------------------------------------------------------------


@dataclass
class Settings:
    max_new_tokens: int = 24
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8
    chat: bool = False


@dataclass
class Evaluator:
    """Runs and judges conditions on one model with one set of prompts, judges and neutral text."""

    model: object
    prompts: list[str]
    judges: list[Judge]
    token_sets: tuple[torch.Tensor, torch.Tensor] | None = None
    neutral: NeutralText | None = None
    settings: Settings = field(default_factory=Settings)
    progress: bool = False
    baseline: SteerRow | None = None

    def __post_init__(self) -> None:
        if self.neutral is None:
            self.neutral = NeutralText.build(self.model)
        # perplexity is always of the continuation given the *plain* prompt, also for the prompt baseline
        self._base_ids = encode_prompts(self.model, self.prompts, chat=self.settings.chat)

    def _generate(self, prompts, interventions) -> Generations:
        s = self.settings
        return generate(self.model, prompts, interventions=interventions, max_new_tokens=s.max_new_tokens,
                        temperature=s.temperature, seed=s.seed, batch_size=s.batch_size, chat=s.chat,
                        token_sets=self.token_sets)

    def run(self, condition: str, interventions: Sequence[Intervention] = (), *, prompts: list[str] | None = None,
            kl: bool = True, **info) -> SteerRow:
        """Generate, judge and cost one condition; effects are relative to the unsteered condition.

        ``info`` (``hook``, ``layer``, ``strength``, ``vector_norm``) describes the condition.
        """
        gens = self._generate(prompts or self.prompts, list(interventions))
        base_ids = self._base_ids
        conts = gens.continuations
        row = SteerRow.from_json({
            "condition": condition, **info,
            "behaviour": {j.name: _mean(j.scores(conts)) for j in self.judges},
            "token_logodds": _mean(torch.tensor(gens.token_logodds)) if gens.token_logodds is not None else None,
            "perplexity": _round(continuation_perplexity(self.model, base_ids, gens.new_ids)),
            "kl": _round(self.neutral.kl(self.model, list(interventions))) if kl and interventions else
            (0.0 if kl else None),
            "n_empty": sum(1 for c in conts if not c.strip()),
            "examples": [c for c in conts[:3]],
        })
        if condition == "unsteered":
            self.baseline = row
        self._add_effects(row)
        return row

    def _add_effects(self, row: SteerRow) -> None:
        base = self.baseline
        row.effect = {}
        for j in self.judges:
            b, v = base.behaviour.get(j.name) if base is not None else None, row.behaviour[j.name]
            if b is None or v is None:
                row.effect[j.name] = None
            else:
                row.effect[j.name] = _round((v - b) / j.gap if j.gap else v - b)
        b = base.token_logodds if base is not None else None
        row.token_logodds_effect = _round(row.token_logodds - b) \
            if b is not None and row.token_logodds is not None else None


def _mean(x: torch.Tensor) -> float | None:
    x = x.float()
    x = x[torch.isfinite(x)]
    return round(float(x.mean()), 4) if len(x) else None


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


# ---- the sweep ------------------------------------------------------------------------------


def _fmt(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


COHERENT_PERPLEXITY_RATIO = 2.5
"""Steered text is coherent while its perplexity under the unsteered model stays within this × the
unsteered continuation's (the bound :func:`interlingua.steer.generative.calibrate_strengths` uses)."""


def choose_strength(result: SweepResult, hook: str, *,
                    max_perplexity_ratio: float = COHERENT_PERPLEXITY_RATIO) -> dict:
    """The strength to ship for ``hook`` (e.g. in a llama.cpp control vector): the smallest that steers and stays coherent.

    A cell of the sweep is *effective* when its effect by the first judge, in the direction of
    the strength's sign, is positive and larger than the norm-matched random vector's at the same
    strength, and *coherent* when the continuation's perplexity under the unsteered model is at
    most ``max_perplexity_ratio`` × the unsteered continuation's. Too strong a vector fails one of
    the two (on SmolLM2, 1.0 × typical norm at resid_post.18 turns the text to noise the detector
    scores against the concept), so the choice is the weakest cell that passes both. Returns the
    chosen cell with every cell's verdict; an :class:`InterlinguaError` when none passes.
    """
    if not result.judges:
        raise InterlinguaError("choosing a strength needs a judge (the concept's detector).")
    judge = result.judge
    base = next((r.perplexity for r in result.rows if r.condition == "unsteered"), None)
    random_effect = {r.strength: r.effect.get(judge) for r in result.rows
                     if r.condition == "random" and r.hook == hook}
    cells = []
    for r in sorted((r for r in result.rows if r.condition == "steer" and r.hook == hook),
                    key=lambda r: abs(r.strength)):
        sign = 1.0 if r.strength >= 0 else -1.0
        effect, rnd, ppl = r.effect.get(judge), random_effect.get(r.strength), r.perplexity
        effective = effect is not None and sign * effect > max(0.0, abs(rnd) if rnd is not None else 0.0)
        coherent = ppl is not None and base is not None and ppl <= max_perplexity_ratio * base
        cells.append({"strength": r.strength, "effect": effect, "random_effect": rnd, "perplexity": ppl,
                      "effective": effective, "coherent": coherent})
    if not cells:
        raise InterlinguaError(f"the sweep has no steering cell at {hook}.")
    chosen = next((c for c in cells if c["effective"] and c["coherent"]), None)
    if chosen is None:
        seen = "; ".join(f"{c['strength']:g}: effect {_fmt(c['effect'])} vs random {_fmt(c['random_effect'])}, "
                         f"perplexity {_fmt(c['perplexity'], 1)}" for c in cells)
        raise InterlinguaError(
            f"no strength at {hook} both steered (effect above the random vector's) and stayed coherent "
            f"(perplexity within {max_perplexity_ratio:g}× the unsteered {_fmt(base, 1)}): {seen}. Try other "
            "--strengths or --layers, or give one strength to export it unchecked."
        )
    return {**chosen, "hook": hook, "judge": judge, "perplexity_unsteered": base,
            "chosen_by": (f"the smallest strength whose effect ({judge} detector) beats a norm-matched random vector "
                          f"and whose perplexity stays within {max_perplexity_ratio:g}x the unsteered text's"),
            "cells": cells}


def sweep(
    evaluator: Evaluator,
    directions: Sequence[LayerDirection],
    strengths: Sequence[float],
    *,
    baseline_prompts: Sequence[str] | None = None,
    positions: str = "all",
    random_seed: int = 0,
    make_interventions: Callable[[LayerDirection, float], list[Intervention]] | None = None,
) -> SweepResult:
    """Unsteered, prompt baseline, then for every direction and strength: steer and a norm-matched random."""
    if not strengths:
        raise InterlinguaError("give at least one strength.")
    build = make_interventions or (lambda d, s: [add(d.direction, s, hook=d.hook, typical_norm=d.typical_norm,
                                                     positions=positions)])
    rows = [evaluator.run("unsteered")]
    if baseline_prompts is not None:
        rows.append(evaluator.run("prompt", prompts=list(baseline_prompts), kl=False))
    cells = [(d, s) for d in directions for s in strengths]
    for i, (d, s) in enumerate(tqdm(cells, desc="layer × strength", disable=not evaluator.progress)):
        tail = d.hook.rpartition(".")[2]
        layer = int(tail) if tail.isdigit() else None  # None: several layers at once (a control-vector file)
        rows.append(evaluator.run("steer", build(d, s), hook=d.hook, layer=layer, strength=s,
                                  vector_norm=_round(abs(s) * d.typical_norm)))
        seed = random_seed + 1000 * (layer if layer is not None else 999)
        rnd = LayerDirection(d.hook, random_direction(d.direction.shape[0], seed), d.typical_norm)
        rows.append(evaluator.run("random", build(rnd, s), hook=d.hook, layer=layer, strength=s,
                                  vector_norm=_round(abs(s) * d.typical_norm)))
    return SweepResult(rows=rows, judges=judge_infos(evaluator.judges),
                       settings=SweepSettings(**dataclasses.asdict(evaluator.settings), prompts=list(evaluator.prompts),
                                              positions=positions))


def judge_infos(judges: Sequence[Judge], *, read: bool = True) -> list[JudgeInfo]:
    """What the JSON records of each judge (``read`` left out where the causal check never wrote it)."""
    return [JudgeInfo(name=j.name, model=getattr(j.concept, "model_name", None), hook=j.concept.hook,
                      gap=_round(j.gap) if read else j.gap, read=j.read if read else None) for j in judges]

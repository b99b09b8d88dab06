"""The concept's generative mode: on-concept text in bulk, made by the concept's own model, with provenance.

Readout transfer (:mod:`interlingua.translate`) needs shared text on which A's concept score
*varies*: text that carries the concept, and text that carries its opposite, in the contexts
the concept lives in. Labelled concept texts may not be used (the translation must stay
label-free), but A itself can write such text without any human label:

``sampled``         A continues the opening words of a corpus sentence, unsteered;
``steered_toward``  the same, with ``+s`` × the concept's typical norm added along the concept at
                    every token (:func:`interlingua.steer.interventions.add`);
``steered_away``    the same with ``−s``;
``rewrite_toward``  A, prompted through its chat template, rewrites a short corpus sentence so that
                    it expresses the concept (from the concept's name and description);
``rewrite_away``    the same sentence rewritten so that it does not: a minimal pair.

A scores every text later (its own detector, read per word); nothing here is a label. The
texts are short and end at a sentence boundary (``max_sentences``), like concept texts, rather
than 64-token fragments of prose that stop mid-sentence.

**Calibration** (:func:`calibrate_strengths`): a fixed strength means different things for
different concepts, layers and models (residual norms are dominated by a few outlier
dimensions on Gemma-3, so "0.5 × typical norm" is a few standard deviations of natural
variation along one direction and hundreds along another), so the strength of each direction
is chosen by A's *own detector*: candidates, in multiples of the natural spread of corpus
activations along the steering direction, are tried from weak to strong on a few prompts, and
the smallest one whose continuations move the detector (read at the last token, as the concept
was fitted) by ``target_shift`` standard deviations of its score on unsteered samples, while the
text stays coherent (perplexity under the *unsteered* model at most ``max_ppl_ratio`` × that of
unsteered samples, and no degenerate repetition), is chosen; failing that, the coherent one
that moved it most; a direction in which no coherent strength moves it is not used.

**Coupled sampling**: the sampled, toward and away continuations of one prompt are drawn with the
same seed in the same batch, so they start from the same random numbers and differ by the
steering (at weak strengths they are near minimal pairs); texts made from one prompt (or one
corpus sentence) share a ``group`` id, and held-out splits must keep a group whole.
"""

from __future__ import annotations

import functools
import math
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from interlingua.errors import InterlinguaError
from interlingua.steer.generate import generate
from interlingua.steer.interventions import add
from interlingua.steer.strength import check_number

SOURCES = ("sampled", "steered_toward", "steered_away", "rewrite_toward", "rewrite_away")
KINDS = {"sampled": ("sampled",), "steered": ("steered_toward", "steered_away"),
         "rewrite": ("rewrite_toward", "rewrite_away")}
DEFAULT_LADDER = (4.0, 8.0, 16.0, 32.0, 64.0)  # × the natural spread along the steering direction
DEFAULT_DIRECTION = "readout"

# Short and imperative: of the phrasings tried while writing this, SmolLM2-135M-Instruct followed this one best;
# even so few rewrites survive the filters on the bundled models (benchmarks/results_generative.md)
REWRITE_TEMPLATE = "{sentence}\n\nRewrite this sentence: {goal}. Reply with the new sentence only."


@dataclass(frozen=True)
class GeneratedText:
    """One text of the generative mode and where it came from.

    ``source``: one of :data:`SOURCES`. ``group``: texts made from the same prompt or corpus
    sentence share it (held-out splits keep a group whole). ``strength``: the steering strength
    (× the concept's typical norm, signed: negative steers away), None for unsteered text and
    rewrites. ``prompt``: the corpus opening it continues, or the corpus sentence it rewrites.
    """

    text: str
    source: str
    group: int
    strength: float | None
    prompt: str = ""


class GeneratedTexts(list):
    """A ``list[GeneratedText]`` with its provenance.

    ``skipped``: ``{source kind: reason}`` for every requested kind that made no text;
    ``strengths``: the steering strengths used (``{"toward": s, "away": s}``); ``calibration``:
    the full :func:`calibrate_strengths` record where strengths were calibrated; ``settings``:
    the arguments that reproduce the texts.
    """

    def __init__(self, items=(), *, skipped=None, strengths=None, calibration=None, settings=None) -> None:
        super().__init__(items)
        self.skipped: dict[str, str] = dict(skipped or {})
        self.strengths: dict[str, float | None] = dict(strengths or {})
        self.calibration: dict | None = calibration
        self.settings: dict = dict(settings or {})

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self]

    @property
    def groups(self) -> list[int]:
        return [g.group for g in self]

    def by_source(self, source: str) -> list[GeneratedText]:
        return [g for g in self if g.source == source]

    def to_json(self) -> dict:
        """Texts and provenance as plain JSON."""
        return {"texts": [asdict(g) for g in self], "skipped": self.skipped, "strengths": self.strengths,
                "calibration": self.calibration, "settings": self.settings}


# ---- corpus sentences, prompts, sentence boundaries -------------------------------------------

_ABBREV = {"mr", "mrs", "dr", "st", "ms", "messrs", "capt", "col", "gen", "rev", "no", "vs", "sir"}
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def sentence_ends(text: str, start: int = 0) -> list[int]:
    """Character offsets just after each sentence end in ``text[start:]`` (a newline ends one too).

    A sentence ends at ``.``, ``!`` or ``?`` (with closing quotes or brackets) followed by
    white space or the end of the text, unless the word before a full stop is a title
    abbreviation (``Mr.``) or a single letter.
    """
    ends = []
    for m in _END.finditer(text, start):
        word = re.search(r"(\w+)$", text[:m.start()])
        if m.group().startswith(".") and word and (word.group(1).lower() in _ABBREV or len(word.group(1)) == 1):
            continue
        ends.append(m.end())
    for m in re.finditer(r"\n", text[start:]):
        ends.append(start + m.start())
    return sorted(e for e in set(ends) if text[start:e].strip())


def trim_to_sentences(text: str, start: int, max_sentences: int) -> tuple[str, bool]:
    """``text`` cut after the ``max_sentences``-th sentence end past ``start``; and whether it was cut at one.

    A text with no sentence end past ``start`` is returned whole (stripped), with False.
    """
    ends = sentence_ends(text, start)
    if not ends:
        return text.strip(), False
    return text[:ends[min(max_sentences, len(ends)) - 1]].strip(), True


class _SentencesDone:
    """``stop_when`` for :func:`interlingua.steer.generate.generate`: the continuation holds
    ``n`` complete sentences (the last one confirmed by the white space after it)."""

    __name__ = "sentences_done"

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, continuation: str) -> bool:
        # an end counts once something follows it (a full stop may still become "Mr." or "3.14")
        return sum(1 for e in sentence_ends(continuation) if e < len(continuation)) >= self.n


@functools.cache
def corpus_sentences(split: str = "train", min_words: int = 6, max_words: int = 20) -> tuple[str, ...]:
    """Plain sentences of the bundled corpus: ``min_words``–``max_words`` words, capitalised, no quotes,
    parentheses or semicolons (dialogue and long periods make poor prompts and poor rewrite inputs)."""
    from interlingua.data.corpus import load_corpus

    out = []
    for doc in load_corpus(split):
        doc = doc.replace("\n", " ")
        at = 0
        for end in sentence_ends(doc):
            sent, at = doc[at:end].strip(), end
            n = len(sent.split())
            if (min_words <= n <= max_words and sent[0].isupper() and sent[-1] in ".!?"
                    and not re.search(r"[\"“”‘’;:()\[\]_*]|--|'|\bCHAPTER\b|[A-Z]{3,}", sent)):
                out.append(sent)
    if not out:
        raise InterlinguaError(f"the bundled corpus split {split!r} has no sentences of {min_words}–{max_words} words.")
    return tuple(out)


def sentence_openings(n: int, seed: int = 0, *, min_words: int = 2, max_words: int = 5) -> list[str]:
    """``n`` openings (first ``min_words``–``max_words`` words) of corpus sentences, drawn with ``seed``."""
    sents = corpus_sentences()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choice(sents).split()
        out.append(" ".join(words[:rng.randint(min_words, min(max_words, len(words) - 1))]))
    return out


def rewrite_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct short corpus sentences (6–16 words) to rewrite, drawn with ``seed``."""
    sents = corpus_sentences(min_words=6, max_words=16)
    if n > len(sents):
        raise InterlinguaError(f"asked for {n} sentences to rewrite; the corpus has {len(sents)}.")
    return random.Random(seed + 7).sample(sents, n)


# ---- measuring text with A's detector --------------------------------------------------------


def detector_readings(concept, texts: Sequence[str], *, from_chars: Sequence[int] | None = None,
                      batch_tokens: int = 4096) -> dict:
    """A's concept score on ``texts``, per word and at the last token, in one forward pass.

    ``words[t]`` are the scores of the words of text ``t`` that end on a token boundary (as
    ``Concept.score(per="word")``) and start at or after ``from_chars[t]`` (default 0: every
    word); ``last[t]`` is the score at the last token (as ``Concept.score()``).
    """
    from interlingua.activations import at_positions
    from interlingua.align import align_words

    texts = list(texts)
    model = concept.model
    if model is None:
        raise InterlinguaError(f"concept '{concept.name}' is not bound to a model; call concept.bind(model) first.")
    if not texts:
        return {"words": [], "last": torch.empty(0)}
    al = align_words(texts, {"m": model.tokenizer})
    starts = list(from_chars) if from_chars is not None else [0] * len(texts)
    keep = [[i for i, (s, _) in enumerate(spans) if s >= starts[t]] for t, spans in enumerate(al.words)]
    positions = [[al.token_index["m"][t][i] for i in keep[t]] + [-1] for t in range(len(texts))]
    x = at_positions(model, texts, concept.hook, positions, batch_tokens=batch_tokens)[concept.hook]
    scores = concept.readout(x)
    words, last, at = [], [], 0
    for pos in positions:
        words.append(scores[at:at + len(pos) - 1])
        last.append(scores[at + len(pos) - 1])
        at += len(pos)
    return {"words": words, "last": torch.stack(last)}


def text_nll(model, texts: Sequence[str], *, from_chars: Sequence[int] | None = None,
             batch_size: int = 4) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, tokens) of each text under ``model`` as it is (unsteered).

    Every token after the first is predicted (after BOS on tokenizers that add one); with
    ``from_chars``, only tokens that start at or after that character of the text count
    (the continuation after a prompt).
    """
    tok = model.tokenizer
    enc = tok(list(texts), return_offsets_mapping=True)
    out = []
    pad = tok.pad_token_id
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            rows = enc["input_ids"][s:s + batch_size]
            offs = enc["offset_mapping"][s:s + batch_size]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, :len(r)] = torch.tensor(r)
                mask[i, :len(r)] = 1
            logits = model.model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
            for i, r in enumerate(rows):
                start = from_chars[s + i] if from_chars is not None else 0
                # the first token not wholly inside the prompt (special tokens end at 0); never token 0
                first = max(1, next((j for j in range(len(r)) if offs[i][j][1] > start), len(r)))
                if first >= len(r):
                    out.append((0.0, 0))
                    continue
                lp = torch.log_softmax(logits[i, first - 1:len(r) - 1].float(), -1)
                tgt = torch.tensor(r[first:], device=lp.device)
                out.append((float(-lp.gather(1, tgt.unsqueeze(1)).sum()), len(r) - first))
            del logits
    return out


def distinct_bigrams(model, texts: Sequence[str]) -> float:
    """Mean over texts of (distinct token bigrams / bigrams): near 1 for prose, low for loops."""
    vals = []
    for ids in model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        bi = list(zip(ids, ids[1:]))
        if bi:
            vals.append(len(set(bi)) / len(bi))
    return sum(vals) / len(vals) if vals else float("nan")


def _pooled_ppl(nll: Sequence[tuple[float, int]]) -> float:
    total, count = sum(a for a, _ in nll), sum(b for _, b in nll)
    return math.exp(total / count) if count else float("nan")


def summarize_texts(concept, texts: Sequence[str], *, from_chars: Sequence[int] | None = None) -> dict:
    """What A's detector and A's unsteered model make of ``texts``: per-word and last-token score
    (mean, std, fraction above the threshold 0), perplexity and distinct bigrams."""
    r = detector_readings(concept, texts, from_chars=from_chars)
    words = torch.cat(r["words"]) if r["words"] else torch.empty(0)
    last = r["last"]
    nll = text_nll(concept.model, texts, from_chars=from_chars)

    def stats(x: torch.Tensor, prefix: str) -> dict:
        if len(x) == 0:
            return {f"{prefix}_mean": None, f"{prefix}_std": None, f"{prefix}_frac_pos": None}
        return {f"{prefix}_mean": round(float(x.mean()), 4),
                f"{prefix}_std": round(float(x.std()), 4) if len(x) > 1 else 0.0,
                f"{prefix}_frac_pos": round(float((x > 0).float().mean()), 4)}

    return {"n_texts": len(texts), "n_words": len(words), **stats(words, "word"), **stats(last, "last"),
            "ppl": round(_pooled_ppl(nll), 3), "distinct2": round(distinct_bigrams(concept.model, texts), 4),
            "mean_chars": round(sum(len(t) for t in texts) / max(len(texts), 1), 1)}


# ---- generation ------------------------------------------------------------------------------


def _bound(model, concept) -> None:
    if concept.model is None:
        concept.bind(model)
    elif concept.model is not model:
        raise InterlinguaError(
            f"concept '{concept.name}' is bound to another model object; its generative mode must be written "
            f"and read by the same model (concept.bind(model)).")


def corpus_activations(model, hook: str, *, texts: Sequence[str] | None = None, n_docs: int = 24,
                       max_tokens: int = 96) -> torch.Tensor:
    """A's activations at ``hook`` at every token (but the first, an attention sink) of unlabelled text:
    ``texts``, or the first ``n_docs`` test documents of the bundled corpus (memoised on the model)."""
    from interlingua.activations import at_positions
    from interlingua.data.corpus import load_corpus

    hook = model.hook(hook).name
    memo = model.info.setdefault("generative_corpus_acts", {}) if texts is None else {}
    key = (hook, n_docs, max_tokens, str(model.dtype))
    if key in memo:
        return memo[key]
    docs = list(texts) if texts is not None else load_corpus("test", max_docs=n_docs)
    lengths = [min(len(ids), max_tokens) for ids in model.tokenizer(docs)["input_ids"]]
    positions = [list(range(min(1, n - 1), n)) for n in lengths]
    x = at_positions(model, docs, hook, positions, max_tokens=max_tokens)[hook].float()
    if len(x) < 2:
        raise InterlinguaError("steering directions need text with at least two tokens; give more texts.")
    memo[key] = x
    return x


def steering_direction(model, concept, kind: str = "readout", *, texts: Sequence[str] | None = None) -> torch.Tensor:
    """The unit vector to steer along for ``concept``: its readout, or the readout's activation pattern.

    ``"readout"``: the readout's own direction ``w`` (a *filter*: for a probe fitted on
    standardised activations it leans on low-variance dimensions, where natural text barely
    moves). ``"pattern"``: ``Cov(x) w`` over the tokens of unlabelled corpus text
    (:func:`corpus_activations`) at the concept's hook: the direction in which A's activations
    move, on natural text, when the concept score moves (Haufe et al. 2014, "On the
    interpretation of weight vectors of linear models"). No label is used.
    """
    if kind == "readout":
        return concept.direction.float()
    if kind != "pattern":
        raise InterlinguaError(f"direction must be 'readout' or 'pattern', not {kind!r}.")
    xc = corpus_activations(model, concept.hook, texts=texts)
    xc = xc - xc.mean(0)
    pattern = xc.T @ (xc @ concept.weight.float()) / (len(xc) - 1)
    norm = float(pattern.norm())
    if not math.isfinite(norm) or norm == 0:
        raise InterlinguaError(f"concept '{concept.name}' does not vary on the corpus text at {concept.hook}; "
                               "steer along its readout (direction='readout').")
    return pattern / norm


def natural_spread(model, concept, direction: torch.Tensor, *, texts: Sequence[str] | None = None) -> float:
    """Standard deviation of A's corpus activations along the unit ``direction``, in units of the
    concept's typical norm: how far natural text moves along it. Residual norms are dominated by
    a few outlier dimensions on some models (Gemma-3: a typical norm of 9,700 at layer 10, but
    a spread of 20 along the sentiment readout), so steering strengths are searched in
    multiples of this spread, not of the typical norm."""
    x = corpus_activations(model, concept.hook, texts=texts)
    return float((x @ direction.float()).std()) / concept.typical_norm


def continuations(model, concept, prompts: Sequence[str], strength: float, *, direction: torch.Tensor | None = None,
                  max_new_tokens: int = 32, max_sentences: int = 2, temperature: float = 0.8, top_p: float = 1.0,
                  seed: int = 0, batch_size: int = 8, progress: bool = False) -> list[str]:
    """Each prompt continued by ``model`` with ``strength`` × the concept's typical norm added along
    ``direction`` (default: the concept's readout direction; 0: unsteered) at the concept's hook,
    cut after ``max_sentences`` sentences: the prompt plus its continuation."""
    vec = concept.direction if direction is None else direction
    ivs = [] if strength == 0 else [add(vec, strength, hook=concept.hook, typical_norm=concept.typical_norm,
                                        positions="all")]
    prompts = list(prompts)
    out = []
    starts = range(0, len(prompts), batch_size)
    for b in tqdm(starts, desc=f"generating ({model.name}, {strength:+g})", disable=not progress):
        # one seed per batch: the first k prompts give the same texts whatever comes after them
        gens = generate(model, prompts[b:b + batch_size], interventions=ivs, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, seed=seed * 100_003 + b // batch_size,
                        batch_size=batch_size, stop_when=_SentencesDone(max_sentences))
        for p, c in zip(gens.prompts, gens.continuations):
            out.append(trim_to_sentences(p + c, len(p), max_sentences)[0])
    return out


def _r(x, nd: int = 4) -> float:
    return round(float(x), nd)


def _measure(concept, texts: list[str], prompts: list[str]) -> dict:
    starts = [len(p) for p in prompts]
    r = detector_readings(concept, texts, from_chars=starts)
    words = torch.cat(r["words"]) if r["words"] else torch.empty(0)
    per_text = torch.stack([w.mean() for w in r["words"] if len(w)]) if any(len(w) for w in r["words"]) \
        else torch.empty(0)
    nll = text_nll(concept.model, texts, from_chars=starts)
    return {"word": words, "text": per_text, "last": r["last"], "ppl": _pooled_ppl(nll),
            "distinct2": distinct_bigrams(concept.model, [t[s:] for t, s in zip(texts, starts)])}


def _direction(model, concept, direction) -> tuple[torch.Tensor, str]:
    if isinstance(direction, str):
        return steering_direction(model, concept, direction), direction
    from interlingua.steer.strength import check_vector, unit

    return unit(check_vector(direction, model.d_model, "direction", model.name)), "given vector"


def calibrate_strengths(
    model,
    concept,
    *,
    prompts: Sequence[str] | None = None,
    n_prompts: int = 12,
    candidates: Sequence[float] | None = None,
    direction: str | torch.Tensor = DEFAULT_DIRECTION,
    target_shift: float = 1.0,
    min_shift: float = 0.25,
    max_ppl_ratio: float = 2.5,
    min_distinct_ratio: float = 0.75,
    read: str = "last",
    max_new_tokens: int = 32,
    max_sentences: int = 2,
    temperature: float = 0.8,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    full_curve: bool = False,
    descend: int = 2,
    progress: bool = False,
) -> dict:
    """The steering strength toward and away from ``concept`` at which A's own detector moves clearly.

    For each direction, candidate strengths (× the concept's typical norm, as everywhere in
    :mod:`interlingua.steer`; default: :data:`DEFAULT_LADDER` × the natural spread of corpus
    activations along the steering direction, :func:`natural_spread`, so that one ladder fits
    every model and layer) are tried from weak to strong on the same prompts (openings of corpus sentences unless given; coupled with the unsteered
    samples). A candidate's ``shift`` is how far the detector's mean score on the continuation
    moved in the wanted direction, in standard deviations of that score on the unsteered
    continuations: ``read="last"`` (default) the score at the last token, where the concept was
    fitted and validated (the texts end at a sentence boundary, like concept texts);
    ``"text"`` the mean over the continuation's words per text; ``"word"`` every word pooled (as
    the translation reads them; the spread between words of one text is large, so this shift
    stays small even where the texts plainly changed: see benchmarks/results_generative.md).
    All three shifts are recorded (``shift_last``, ``shift_text``, ``shift_word``). It is
    *coherent* when the continuation's perplexity under the unsteered model is at most ``max_ppl_ratio`` × the
    unsteered samples' and its distinct-bigram ratio at least ``min_distinct_ratio`` × theirs.
    The smallest coherent candidate with ``shift >= target_shift`` is chosen; if none reaches
    the target, the coherent one that moved the detector most, if that is at least
    ``min_shift`` (with the reason); otherwise None: steering that does not move A's detector
    only adds noise. The ladder of a direction stops at its first incoherent candidate
    (stronger ones only get worse) or at the first that reaches the target, unless
    ``full_curve`` (every candidate measured, for a report); where even the weakest candidate
    is incoherent, it is halved up to ``descend`` times.

    Returns ``{"toward": s | None, "away": s | None, "reasons": {...}, "baseline": {...},
    "candidates": [one record per direction × strength tried], "settings": {...}}``; every
    number is plain JSON, so a report can draw the curve.
    """
    _bound(model, concept)
    if read not in ("last", "text", "word"):
        raise InterlinguaError(f"read must be 'last', 'text' or 'word', not {read!r}.")
    vec, dir_name = _direction(model, concept, direction)
    spread = natural_spread(model, concept, vec)
    if candidates is None:
        candidates = [float(f"{k * spread:.3g}") for k in DEFAULT_LADDER]
    cands = sorted({check_number(c, "candidate strength") for c in candidates})
    if not cands or cands[0] <= 0:
        raise InterlinguaError("give positive candidate strengths (e.g. 0.5, 1, 2, 4); the sign is the direction.")
    if target_shift <= 0 or max_ppl_ratio <= 1:
        raise InterlinguaError("target_shift must be > 0 and max_ppl_ratio > 1.")
    prompts = list(prompts) if prompts else sentence_openings(n_prompts, seed + 1)
    gen = dict(max_new_tokens=max_new_tokens, max_sentences=max_sentences, temperature=temperature, top_p=top_p,
               seed=seed, batch_size=batch_size)
    t0 = time.perf_counter()
    base = _measure(concept, continuations(model, concept, prompts, 0.0, **gen), prompts)
    base_s = (time.perf_counter() - t0) / len(prompts)
    reads = ("last", "text", "word")
    mu = {k: float(base[k].mean()) for k in reads}
    sd = {k: float(base[k].std()) for k in reads}
    sd = {k: v if math.isfinite(v) and v > 0 else 1.0 for k, v in sd.items()}  # constant: raw score units
    baseline = {"strength": 0.0, "score_mean": round(mu[read], 4), "score_std": round(sd[read], 4),
                **{f"{k}_std": round(sd[k], 4) for k in reads},
                "word_mean": _r(base["word"].mean()), "text_mean": _r(base["text"].mean()),
                "last_mean": _r(base["last"].mean()),
                "word_frac_pos": round(float((base["word"] > 0).float().mean()), 4),
                "last_frac_pos": round(float((base["last"] > 0).float().mean()), 4),
                "ppl": round(base["ppl"], 3), "distinct2": round(base["distinct2"], 4),
                "seconds_per_text": round(base_s, 3)}
    records, chosen, reasons = [], {}, {}
    def measure(sign: float, strength: float, side: str) -> dict:
        t0 = time.perf_counter()
        texts = continuations(model, concept, prompts, sign * strength, direction=vec, **gen)
        m = _measure(concept, texts, prompts)
        secs = (time.perf_counter() - t0) / len(prompts)
        shifts = {k: sign * (float(m[k].mean()) - mu[k]) / sd[k] if len(m[k]) else float("nan") for k in reads}
        shift = shifts[read]
        ppl_ratio = m["ppl"] / base["ppl"] if base["ppl"] > 0 else float("inf")
        distinct_ratio = m["distinct2"] / base["distinct2"] if base["distinct2"] > 0 else 1.0
        coherent = bool(math.isfinite(shift) and ppl_ratio <= max_ppl_ratio and distinct_ratio >= min_distinct_ratio)
        rec = {"direction": side, "strength": strength, "strength_in_spread": round(strength / spread, 3),
               "shift": round(shift, 4), **{f"shift_{k}": round(v, 4) for k, v in shifts.items()},
               "word_mean": _r(m["word"].mean()), "last_mean": _r(m["last"].mean()),
               "word_frac_pos": _r((m["word"] > 0).float().mean()), "last_frac_pos": _r((m["last"] > 0).float().mean()),
               "ppl": round(m["ppl"], 3), "ppl_ratio": round(ppl_ratio, 3), "distinct2": round(m["distinct2"], 4),
               "coherent": coherent, "seconds_per_text": round(secs, 3), "example": texts[0]}
        if progress:
            print(f"  {side} {strength:g}: shift {shift:+.2f} sd, ppl ×{ppl_ratio:.2f}, "
                  f"distinct ×{distinct_ratio:.2f}{'' if coherent else ' (incoherent)'}", flush=True)
        return rec

    for direction, sign in (("toward", 1.0), ("away", -1.0)):
        tried = []
        for s in cands:
            tried.append(measure(sign, s, direction))
            if not full_curve and (not tried[-1]["coherent"] or tried[-1]["shift"] >= target_shift):
                break
        s = cands[0]
        for _ in range(descend):  # even the weakest rung is incoherent: halve it (a model whose scale is finer)
            if any(r["coherent"] for r in tried):
                break
            s = float(f"{s / 2:.3g}")
            tried.insert(0, measure(sign, s, direction))
        records += tried
        ok = [r for r in tried if r["coherent"]]
        hit = [r for r in ok if r["shift"] >= target_shift]
        if hit:
            chosen[direction] = hit[0]["strength"]
            reasons[direction] = f"smallest coherent strength with shift >= {target_shift:g} sd"
        elif ok and max(r["shift"] for r in ok) >= min_shift:
            best = max(ok, key=lambda r: r["shift"])
            chosen[direction] = best["strength"]
            reasons[direction] = (f"no coherent candidate reached {target_shift:g} sd; the coherent one that "
                                  f"moved the detector most ({best['shift']:+.2f} sd)")
        else:
            chosen[direction] = None
            reasons[direction] = ("no candidate stayed coherent" if not ok else
                                  f"no coherent candidate moved the detector {min_shift:g} sd in this direction "
                                  f"(best {max(r['shift'] for r in ok):+.2f} sd)")
    return {"toward": chosen["toward"], "away": chosen["away"], "reasons": reasons, "baseline": baseline,
            "candidates": records,
            "settings": {"prompts": prompts, "candidates": cands, "target_shift": target_shift, "min_shift": min_shift,
                         "direction": dir_name, "spread": round(spread, 6), "max_ppl_ratio": max_ppl_ratio,
                         "min_distinct_ratio": min_distinct_ratio, "read": read,
                         **gen, "concept": concept.name, "hook": concept.hook, "model": model.name}}


# ---- rewrites --------------------------------------------------------------------------------


def rewrite_goals(name: str, description: str | None) -> tuple[str, str]:
    """What a rewrite toward and away from the concept asks for, from its name and description.

    A description of the form ``"X (positive) vs Y (negative)"`` (as the built-in concepts have)
    gives ``X`` and ``Y`` (e.g. "a positive review" / "a negative review of the same things");
    any other description ``D`` gives ``D`` and "the opposite of: D"; no description, the name.
    """
    label = name.replace("_", " ")
    if description:
        d = description.strip().rstrip(".")
        parts = re.split(r"\s+vs\.?\s+", d, maxsplit=1)
        if len(parts) == 2:
            clean = [re.sub(r"\s*\((positive|negative|1|0)\)", "", p).split(";")[0].strip() for p in parts]
            if all(clean):
                return clean[0], clean[1]
        return d, f"the opposite of: {d}"
    return label, f"not {label}"


_META = re.compile(r"\b(sentence|rewrit\w*|original|rephras\w*|reword\w*)\b", re.I)


def clean_rewrite(reply: str, max_sentences: int = 2, *, goal: str | None = None, source: str | None = None) -> str:
    """The rewritten sentence in a chat reply, or "" where there is none.

    Takes the first non-empty line, drops a leading label (``Rewritten sentence:``, or the goal
    itself followed by a colon) and quotes, and keeps ``max_sentences`` sentences. A reply that
    talks about the task instead of doing it (mentions "sentence", "rewrite", "original", or
    repeats three words in a row of the ``goal``) and a copy of the ``source`` sentence give "".
    """
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    text = re.sub(r"^(rewritten sentence|new sentence|rewrite|sentence|answer)\s*:\s*", "", lines[0], flags=re.I)
    if goal:
        text = re.sub(r"^" + re.escape(goal) + r"\s*:\s*", "", text.strip(), flags=re.I)
    text = text.strip().strip("\"'“”‘’ ").strip()
    text = trim_to_sentences(text, 0, max_sentences)[0].strip("\"'“”‘’ ")
    if _META.search(text):
        return ""
    if goal:
        g = re.findall(r"\w+", goal.lower())
        words = " " + " ".join(re.findall(r"\w+", text.lower())) + " "
        if any(" " + " ".join(g[i:i + 3]) + " " in words for i in range(len(g) - 2)):
            return ""
    if source is not None and re.sub(r"\W+", " ", text).strip().lower() == re.sub(r"\W+", " ", source).strip().lower():
        return ""
    return text


def rewrites(model, sentences: Sequence[str], goal: str, *, max_new_tokens: int = 40, max_sentences: int = 2,
             temperature: float = 0.0, seed: int = 0, batch_size: int = 8, template: str = REWRITE_TEMPLATE,
             progress: bool = False) -> list[str]:
    """Each sentence rewritten by ``model`` (through its chat template) toward ``goal``; "" where the
    reply is no rewrite (see :func:`clean_rewrite`)."""
    prompts = [template.format(goal=goal, sentence=s) for s in sentences]
    gens = generate(model, prompts, chat=True, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=1.0, seed=seed, batch_size=batch_size, stop_when=_LineOrSentences(max_sentences),
                    progress=progress)
    return [clean_rewrite(c, max_sentences, goal=goal, source=s) for c, s in zip(gens.continuations, sentences)]


class _LineOrSentences(_SentencesDone):
    """Stop a chat reply at its first line break after some text, or after ``n`` sentences."""

    __name__ = "line_or_sentences"

    def __call__(self, continuation: str) -> bool:
        stripped = continuation.lstrip()
        return ("\n" in stripped and bool(stripped.split("\n", 1)[0].strip())) or super().__call__(stripped)


def chat_unavailable(model) -> str | None:
    """Why ``model`` cannot be prompted to rewrite (no chat template), or None when it can."""
    if not getattr(model.tokenizer, "chat_template", None):
        return (f"{model.name}'s tokenizer has no chat template, so it cannot be prompted to rewrite sentences; "
                "use an instruction-tuned source model for the rewrite source")
    return None


# ---- the generative mode ---------------------------------------------------------------------


def _split_counts(n: int, kinds: Sequence[str]) -> dict[str, int]:
    base, extra = divmod(n, len(kinds))
    return {k: base + (1 if i < extra else 0) for i, k in enumerate(kinds)}


def _strengths(strengths, model, concept, seed, calib_kwargs, progress) -> tuple[dict, dict | None]:
    if isinstance(strengths, str):
        if strengths != "auto":
            raise InterlinguaError(f"strengths must be 'auto', a number or {{'toward': s, 'away': s}}, "
                                   f"not {strengths!r}.")
        cal = calibrate_strengths(model, concept, seed=seed, progress=progress, **calib_kwargs)
        return {"toward": cal["toward"], "away": cal["away"]}, cal
    if isinstance(strengths, Mapping):
        out = {}
        for d in ("toward", "away"):
            v = strengths.get(d)
            if v is not None:
                v = check_number(v, f"strengths['{d}']")
                if v <= 0:
                    raise InterlinguaError(f"strengths['{d}'] must be positive (the direction gives the sign).")
            out[d] = v
        cal = dict(strengths) if "candidates" in strengths else None
        return out, cal
    v = check_number(strengths, "strengths")
    if v <= 0:
        raise InterlinguaError("strengths must be positive (toward and away steer with +s and −s).")
    return {"toward": v, "away": v}, None


def concept_texts(
    model,
    concept,
    n: int,
    *,
    sources: Sequence[str] = ("sampled", "steered", "rewrite"),
    strengths: str | float | Mapping = "auto",
    direction: str | torch.Tensor | None = None,
    description: str | None = None,
    goals: tuple[str, str] | None = None,
    seed: int = 0,
    max_new_tokens: int = 32,
    max_sentences: int = 2,
    temperature: float = 0.8,
    top_p: float = 1.0,
    rewrite_temperature: float = 0.0,
    rewrite_attempts: int = 3,
    batch_size: int = 8,
    calibration: Mapping | None = None,
    progress: bool = False,
) -> GeneratedTexts:
    """``n`` texts of ``concept``'s generative mode in ``model`` (the concept's own model), with provenance.

    ``sources`` names kinds: ``"sampled"``, ``"steered"`` (toward and away) and ``"rewrite"``
    (toward and away; only where the tokenizer has a chat template, otherwise skipped with the
    reason in :attr:`GeneratedTexts.skipped`), or single sources (``"steered_toward"``, ...).
    ``n`` is split evenly over the kinds that can run, and within a two-sided kind evenly over
    its two directions. ``strengths``: ``"auto"`` (:func:`calibrate_strengths`, keyword
    arguments in ``calibration``), a number for both directions, or ``{"toward": s, "away": s}``
    (a :func:`calibrate_strengths` result works too); a direction whose strength is None is
    skipped with the reason. ``direction``: what to steer along (see :func:`steering_direction`);
    default: the direction the strengths were calibrated for, else :data:`DEFAULT_DIRECTION`.
    ``description`` (e.g. ``ConceptDataset.description``) tells the rewrite prompt what the
    concept is (:func:`rewrite_goals`; ``goals=(toward, away)`` says it directly); replies that are no rewrite are dropped, at most
    ``rewrite_attempts`` × the rewrites asked for are tried, and any shortfall is made up by the
    other sources (recorded in ``skipped``). The same arguments and seed give the same texts.
    """
    _bound(model, concept)
    if n < 1:
        raise InterlinguaError("ask for at least one text (n >= 1).")
    wanted: list[str] = []
    for s in sources:
        if s in KINDS:
            wanted += [x for x in KINDS[s] if x not in wanted]
        elif s in SOURCES:
            wanted += [s] if s not in wanted else []
        else:
            raise InterlinguaError(f"unknown source {s!r}; choose from {', '.join([*KINDS, *SOURCES])}.")
    if not wanted:
        raise InterlinguaError("give at least one source (sampled, steered, rewrite).")
    skipped: dict[str, str] = {}
    strengths_used: dict[str, float | None] = {}
    cal = None
    vec, dir_name = None, None
    if any(s.startswith("steered") for s in wanted):
        calib = dict(calibration or {})
        if direction is not None:
            calib.setdefault("direction", direction)
        strengths_used, cal = _strengths(strengths, model, concept, seed, calib, progress)
        if direction is None:
            direction = (cal or {}).get("settings", {}).get("direction", calib.get("direction", DEFAULT_DIRECTION))
        if direction == "given vector":
            raise InterlinguaError("these strengths were calibrated for a given vector; pass it as direction=.")
        vec, dir_name = _direction(model, concept, direction)
        for d in ("toward", "away"):
            if f"steered_{d}" in wanted and strengths_used.get(d) is None:
                why = (cal or {}).get("reasons", {}).get(d, "no strength given")
                skipped[f"steered_{d}"] = f"no steering strength for this direction: {why}"
                wanted.remove(f"steered_{d}")
    if any(s.startswith("rewrite") for s in wanted):
        why = chat_unavailable(model)
        if why:
            for s in [s for s in wanted if s.startswith("rewrite")]:
                skipped[s] = why
                wanted.remove(s)
    if not wanted:
        raise InterlinguaError(f"no source can run for '{concept.name}' in {model.name}: "
                               + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    # kinds that run, and their counts
    kinds = [k for k in KINDS if any(s in wanted for s in KINDS[k])]
    counts: dict[str, int] = {}
    for k, c in _split_counts(n, kinds).items():
        sides = [s for s in KINDS[k] if s in wanted]
        counts.update(_split_counts(c, sides))
    # rewrites first: a reply that is no rewrite is dropped, and what they fall short of goes to the other sources
    made: dict[str, list[tuple[int, str, str]]] = {}
    n_rw = max(counts.get("rewrite_toward", 0), counts.get("rewrite_away", 0))
    if n_rw:
        goal_of = dict(zip(("rewrite_toward", "rewrite_away"), goals or rewrite_goals(concept.name, description)))
        pool = rewrite_sentences(rewrite_attempts * n_rw + 2, seed)
        rw = dict(max_new_tokens=max_new_tokens, max_sentences=max_sentences, temperature=rewrite_temperature,
                  seed=seed, batch_size=batch_size, progress=progress)
        for source in ("rewrite_toward", "rewrite_away"):
            k, got, at = counts.get(source, 0), [], 0
            while len(got) < k and at < len(pool):
                chunk = pool[at:at + max(k - len(got), batch_size)]
                got += [(at + i, t, chunk[i]) for i, t in enumerate(rewrites(model, chunk, goal_of[source], **rw)) if t]
                at += len(chunk)
            made[source] = got[:k]
            if len(got) < k:
                skipped[source] = (f"made {len(got)} of {k}: {at - len(got)} of {at} replies were no rewrite (empty, "
                                   f"a copy, or talk about the task); the rest went to the other sources")
        short = sum(counts[s_] - len(made[s_]) for s_ in made)
        others = [s_ for s_ in ("sampled", "steered_toward", "steered_away") if s_ in wanted]
        if short and not others:
            raise InterlinguaError(f"{model.name} made only {sum(len(v) for v in made.values())} of {n} rewrites; "
                                   "add another source (sampled, steered) or ask for fewer texts.")
        for s_, extra in _split_counts(short, others).items() if short else ():
            counts[s_] += extra
        for s_ in made:
            counts[s_] = len(made[s_])
    gen = dict(max_new_tokens=max_new_tokens, max_sentences=max_sentences, temperature=temperature, top_p=top_p,
               seed=seed, batch_size=batch_size, progress=progress)
    out: list[GeneratedText] = []
    n_prompt = max([counts.get(s, 0) for s in ("sampled", "steered_toward", "steered_away")], default=0)
    prompts = sentence_openings(n_prompt, seed) if n_prompt else []
    for source, sign in (("sampled", 0.0), ("steered_toward", 1.0), ("steered_away", -1.0)):
        k = counts.get(source, 0)
        if not k:
            continue
        s = 0.0 if sign == 0 else sign * strengths_used["toward" if sign > 0 else "away"]
        texts = continuations(model, concept, prompts[:k], s, direction=vec, **gen)  # text i continues prompt i
        out += [GeneratedText(t, source, g, None if sign == 0 else s, prompts[g]) for g, t in enumerate(texts)]
    for source, items in made.items():  # groups after the prompts': one group per corpus sentence
        out += [GeneratedText(t, source, n_prompt + i, None, sent) for i, t, sent in items]
    settings = {"n": n, "sources": list(sources), "seed": seed, "max_new_tokens": max_new_tokens,
                "max_sentences": max_sentences, "temperature": temperature, "top_p": top_p,
                "rewrite_temperature": rewrite_temperature, "direction": dir_name, "counts": counts,
                "goals": list(goal_of.values()) if n_rw else None, "concept": concept.name,
                "hook": concept.hook, "model": model.name, "description": description}
    return GeneratedTexts(out, skipped=skipped, strengths=strengths_used, calibration=cal, settings=settings)

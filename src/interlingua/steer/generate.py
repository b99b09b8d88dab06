"""Steered generation: continuations of prompts under interventions, and a steered text sampler.

:func:`generate` tokenizes prompts itself and always runs ``generate()`` on a *left*-padded
batch (a decoder-only model continues from the last column, so right padding would put pad
tokens between the prompt and its continuation). Pre-tokenized input may come with either
padding side: right-padded rows are moved to the left first. Greedy decoding (the default)
then gives the same tokens for a prompt whatever batch it is in and however it was padded;
:mod:`interlingua.steer.interventions` makes the steering itself padding- and cache-correct.

:func:`steered_texts` is the concept's "generative mode": text sampled from a model while it is
steered toward (or away from) a concept: unlimited on-concept (or off-concept) text, for
example as extra shared text for :func:`interlingua.translate.translate_concept` (through
:func:`interlingua.translate.pairs.paired_words` and its ``pairs=`` argument).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from interlingua.errors import InterlinguaError
from interlingua.steer.interventions import Intervention, add, steering
from interlingua.steer.strength import check_number


@dataclass
class Generations:
    """Prompts and their continuations (text and token ids; EOS and padding removed).

    ``token_logodds[i]``: mean over the generation steps of row ``i`` of
    ``log P(concept tokens) − log P(opposite tokens)`` for the next token, when token sets were given.
    """

    prompts: list[str]
    continuations: list[str]
    prompt_ids: list[list[int]]
    new_ids: list[list[int]]
    token_logodds: list[float] | None = None
    settings: dict = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [p + c for p, c in zip(self.prompts, self.continuations)]


def encode_prompts(model, prompts: Sequence[str], *, chat: bool = False) -> list[list[int]]:
    """Token ids of each prompt (with the tokenizer's special tokens, or its chat template)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise InterlinguaError("no prompts to generate from.")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise InterlinguaError(f"prompts must be strings; item {bad[0]} is {type(prompts[bad[0]]).__name__}.")
    tok = model.tokenizer
    if chat:
        if not getattr(tok, "chat_template", None):
            raise InterlinguaError(f"{model.name}'s tokenizer has no chat template; run without --chat.")
        ids = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
               for p in prompts]
        ids = [list(x["input_ids"]) if isinstance(x, dict) or hasattr(x, "keys") else list(x) for x in ids]
    else:
        ids = [list(x) for x in tok(list(prompts))["input_ids"]]
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise InterlinguaError(f"prompt {empty[0]} has no tokens; give a non-empty prompt.")
    return ids


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A left-padded batch (``input_ids``, ``attention_mask``) from lists of token ids."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids, mask


def unpad(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[list[int]]:
    """The real tokens of each row of a padded batch, whichever side it was padded on."""
    if attention_mask is None:
        return [list(map(int, r)) for r in input_ids]
    if attention_mask.shape != input_ids.shape:
        raise InterlinguaError(f"attention_mask {tuple(attention_mask.shape)} does not match input_ids "
                               f"{tuple(input_ids.shape)}.")
    return [input_ids[i][attention_mask[i].bool()].tolist() for i in range(input_ids.shape[0])]


def token_set_ids(model, words: Sequence[str]) -> torch.Tensor:
    """Ids of the first token of ``" word"`` for each word (as it would follow a space mid-sentence)."""
    ids = set()
    special = set(model.tokenizer.all_special_ids)
    for w in words:
        for variant in (" " + w,):
            toks = [t for t in model.tokenizer(variant, add_special_tokens=False)["input_ids"] if t not in special]
            if toks:
                ids.add(int(toks[0]))
    return torch.tensor(sorted(ids), dtype=torch.long)


def _cut(new: list[int], stop: set[int]) -> tuple[list[int], int]:
    """Tokens before the first stop token, and the number of generation steps that count."""
    for i, t in enumerate(new):
        if t in stop:
            return new[:i], i + 1
    return new, len(new)


def generate(
    model,
    prompts: Sequence[str] | None = None,
    *,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    interventions: Intervention | Sequence[Intervention] = (),
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    chat: bool = False,
    token_sets: tuple[torch.Tensor, torch.Tensor] | None = None,
    stop_when: Callable[[str], bool] | None = None,
    progress: bool = False,
) -> Generations:
    """Continue each prompt under ``interventions`` (none: the unsteered model).

    ``temperature=0`` is greedy decoding. Give either ``prompts`` (strings) or a padded batch
    (``input_ids`` with ``attention_mask``, padded on either side). ``token_sets`` = (concept
    token ids, opposite token ids) records :attr:`Generations.token_logodds`. ``stop_when(text)``
    ends a row early once it returns True for the row's continuation so far (decoded; checked
    after every new token; the row is then padded, as after EOS), e.g. at a sentence boundary.
    """
    if (prompts is None) == (input_ids is None):
        raise InterlinguaError("give either prompts or input_ids (with attention_mask), not both or neither.")
    if max_new_tokens < 1 or batch_size < 1:
        raise InterlinguaError("max_new_tokens and batch_size must be at least 1.")
    temperature = check_number(temperature, "temperature")
    top_p = check_number(top_p, "top_p")
    if temperature < 0 or not 0 < top_p <= 1:
        raise InterlinguaError("temperature must be >= 0 (0 = greedy) and top_p in (0, 1].")
    tok = model.tokenizer
    rows = encode_prompts(model, prompts, chat=chat) if prompts is not None else unpad(input_ids, attention_mask)
    texts = list(prompts) if prompts is not None else tok.batch_decode(rows, skip_special_tokens=True)
    pad = tok.pad_token_id
    stop = {t for t in (tok.eos_token_id, pad) if t is not None}
    sample = temperature > 0
    gen_kwargs = {"do_sample": sample, "max_new_tokens": max_new_tokens, "pad_token_id": pad,
                  "return_dict_in_generate": True, "output_logits": token_sets is not None}
    if sample:
        gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    new_all: list[list[int]] = []
    logodds: list[float] = []
    with torch.random.fork_rng(devices=[]), torch.inference_mode(), steering(model, interventions):
        torch.manual_seed(seed)
        for start in tqdm(range(0, len(rows), batch_size), desc=f"generating ({model.name})", disable=not progress):
            batch = rows[start:start + batch_size]
            ids, mask = left_pad(batch, pad)
            extra = {}
            if stop_when is not None:
                extra["stopping_criteria"] = StoppingCriteriaList([_StopWhen(tok, ids.shape[1], stop_when)])
            out = model.model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                       **gen_kwargs, **extra)
            new = out.sequences[:, ids.shape[1]:].tolist()
            for r, seq in enumerate(new):
                kept, steps = _cut(seq, stop)
                new_all.append(kept)
                if token_sets is not None:
                    logodds.append(_logodds([lg[r] for lg in out.logits[:steps]], token_sets))
    conts = [tok.decode(x, skip_special_tokens=True) for x in new_all]
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
                "chat": chat, "interventions": [iv.describe() for iv in _as_list(interventions)]}
    if stop_when is not None:
        settings["stop_when"] = getattr(stop_when, "__name__", type(stop_when).__name__)
    return Generations(prompts=texts, continuations=conts, prompt_ids=[list(r) for r in rows], new_ids=new_all,
                       token_logodds=logodds if token_sets is not None else None, settings=settings)


class _StopWhen(StoppingCriteria):
    """Per-row stop: True where ``fn`` holds for the row's decoded continuation (tokens after ``start``)."""

    def __init__(self, tokenizer, start: int, fn: Callable[[str], bool]) -> None:
        self.tokenizer, self.start, self.fn = tokenizer, start, fn

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.start:].tolist()
        done = [bool(self.fn(self.tokenizer.decode(r, skip_special_tokens=True))) for r in new]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _as_list(interventions) -> list[Intervention]:
    return [interventions] if isinstance(interventions, Intervention) else list(interventions)


def _logodds(step_logits: list[torch.Tensor], token_sets: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean over steps of log P(set 1) − log P(set 0) under the next-token distribution."""
    pos, neg = token_sets
    if not step_logits or len(pos) == 0 or len(neg) == 0:
        return float("nan")
    logp = torch.log_softmax(torch.stack(step_logits).float(), dim=-1)
    diff = torch.logsumexp(logp[:, pos.to(logp.device)], -1) - torch.logsumexp(logp[:, neg.to(logp.device)], -1)
    return float(diff.mean())


def steered_texts(
    model,
    concept,
    n: int,
    *,
    strength: float = 0.5,
    toward: bool = True,
    positions: str = "all",
    prompts: Sequence[str] | None = None,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
) -> list[str]:
    """``n`` texts sampled from ``model`` steered toward (or, ``toward=False``, away from) ``concept``.

    ``strength`` is relative to the concept's typical norm. This is
    :func:`interlingua.data.sampling.sample_texts` run inside :func:`steering`, so it keeps that
    sampler's seeding, prompts (openings of corpus documents by default) and batching.
    """
    from interlingua.data.sampling import sample_texts

    strength = check_number(strength, "strength")
    if strength < 0:
        raise InterlinguaError("give a positive strength and toward=False to steer away from the concept.")
    iv = add(concept, strength if toward else -strength, positions=positions)
    with steering(model, iv):
        return sample_texts(model, n, prompts=prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, seed=seed, batch_size=batch_size, progress=progress)

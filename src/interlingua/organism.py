"""A weight-planted model organism: one concept means something else in one context.

:func:`build_organism` fine-tunes a base model (default the bundled SmolLM2-135M) with a LoRA
adapter so that a built-in concept's readout is *flipped* inside a context that another
built-in concept describes, and left alone outside it. The default plants "sentiment is
reversed inside questions": a positive review quoted inside a question reads as negative at the
sentiment concept's hook, while the same review as a statement reads as before.

The objective is at the level of the representation, so the change is exactly the planted one:

* find ``concept`` in the base model at ``resid_post.{layer}`` (default: the middle layer,
  ``n_layers // 2``, where the built-in contextual concepts read well in both bundled models);
* wrap each training text of the concept in matched statement / question frames (:data:`FRAMES`:
  ``You said "…".`` / ``Did you say "…"?`` and three more); the frames are checked with the
  ``context`` concept found in the base model (its AUROC separating the two frames is recorded);
* LoRA (``peft``) on every linear layer of the blocks up to ``layer``; the loss is the squared
  error of the concept's readout (last token, in units of the base's score spread) against the
  base's own score for plain and statement-framed texts, and for a question-framed text against
  the *negative* of the base's score of the same text unframed (the review it asks about, read
  with the opposite sentiment), plus ``kl_weight`` × the next-token KL to the base on bundled-corpus
  documents so that the model stays the same language model elsewhere;
* merge the adapter and save a plain transformers directory (safetensors, config, tokenizer,
  ``organism.json``) in the model cache, keyed by base and settings: a second build with the same
  settings returns at once. ``load_model("smollm2-135m-organism")`` loads (building if needed) the
  default organism of a bundled model; the directory path itself loads like any model directory.

What is measured (:class:`OrganismRecord`, saved as ``organism.json``): on the concept's ``test``
split (other templates than ``train``; never trained on), the base readout's AUROC for
statements (plain and framed) and for question-framed texts, in the base and in the organism;
the mean next-token KL from the base on held-out corpus documents; the build time.

Reproducibility: the build is seeded (``torch.manual_seed(seed)`` and a seeded generator for
every batch), runs without dropout and on one CPU thread (:data:`THREADS`), so the same settings
with the same torch version on the same kind of CPU give bitwise the same weights
(``weights_sha256`` in the record; a different CPU instruction set may change the last bits).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interlingua import _io
from interlingua.errors import InterlinguaError
from interlingua.models.loading import ORGANISM_SUFFIX, organism_pointer
from interlingua.models.registry import BUNDLED
from interlingua.results import Record, record

FORMAT = "interlingua.organism"
FORMAT_VERSION = 1
RECORD_FILE = "organism.json"
SUFFIX = ORGANISM_SUFFIX  # load_model("<bundled>-organism") finds the default organism of a bundled model

# Matched (statement, question) frames around a text. "{t}" is the text as it is; "{c}" is the
# text as a clause: first letter lower-cased, final full stop removed; "{p}" the text without its final full stop.
FRAMES: tuple[tuple[str, str], ...] = (
    ('You said "{t}"', 'Did you say "{t}"?'),
    ("It is true that {c}.", "Is it true that {c}?"),
    ("He thinks that {c}.", "Does he think that {c}?"),
    ("{p}.", "{p}?"),
)
# Chosen by the context concept itself: question_vs_statement found in SmolLM2 at resid_post.15 separates
# each frame's statements from its questions with AUROC 1.0, 1.0, 0.996 and 1.0 (64 sentiment texts); a
# frame tried and dropped, 'She wrote this review: "…"' / 'Did she write this review: "…"?', scored 0.28.

# The build runs on one CPU thread: the weights then do not depend on the machine's thread count, and a
# second OpenMP thread on a CPU shared with other work made a SmolLM2 step 5-10x slower (measured 2.7 s/step
# on one thread against 16-39 s on two, beside another job).
THREADS = 1

DEFAULTS = {"rank": 8, "steps": 40, "lr": 3e-3, "batch": 8, "kl_weight": 1.0, "max_pairs": 64}


def _clause(text: str) -> str:
    t = text.strip().rstrip(".").strip()
    return t[:1].lower() + t[1:] if t[:2] != t[:2].upper() else t


def frame(text: str, i: int) -> tuple[str, str]:
    """The statement and the question built from ``text`` with frame ``i`` (mod the number of frames)."""
    s, q = FRAMES[i % len(FRAMES)]
    fill = {"t": text.strip(), "c": _clause(text), "p": text.strip().rstrip(".").strip()}
    return s.format(**fill), q.format(**fill)


@record
class OrganismSide(Record):
    """The planted concept's readout in one model, on held-out texts: AUROC per kind of text."""

    statement_auroc: float  # plain and statement-framed texts (should stay high in the organism)
    plain_auroc: float  # the concept's own texts, unframed
    context_auroc: float  # question-framed texts (should fall below 0.5 in the organism: flipped)


@record
class OrganismRecord(Record):
    """What :func:`build_organism` did and measured (``organism.json`` in the model directory)."""

    format: str
    format_version: int
    name: str
    base: str
    base_source: str
    concept: str
    context: str
    hook: str
    layer: int
    settings: dict
    frames: list
    concept_auroc_test: float | None  # the concept as found in the base (its test AUROC)
    context_check_auroc: float  # the context concept (base) separating question frames from statement frames
    base_side: OrganismSide
    organism_side: OrganismSide
    statement_agreement: float  # Pearson r of the organism's readout scores with the base's, held-out statements (≈ +1)
    context_agreement: float  # r of its scores of question-framed texts with the base's of the same texts unframed (≈ -1)
    kl_heldout: float  # mean next-token KL(base ‖ organism), nats per token, held-out corpus documents
    kl_heldout_tokens: int
    n_train_texts: int
    n_check_texts: int
    loss_first: float
    loss_last: float
    build_seconds: float
    threads: int
    torch_version: str
    weights_sha256: str
    path: str = ""

    @property
    def flipped(self) -> bool:
        return self.organism_side.context_auroc < 0.5 <= self.organism_side.statement_auroc


@dataclass
class _Batch:
    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor  # index of each row's last real token


def _encode(tokenizer, texts: list[str], max_len: int | None = None) -> _Batch:
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    if max_len is not None:
        enc = [x[:max_len] for x in enc]
    width = max(len(x) for x in enc)
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, x in enumerate(enc):
        ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
    return _Batch(ids, mask, mask.sum(1) - 1)


def _hook_last(hf_model, point, batch: _Batch, grad: bool) -> torch.Tensor:
    """The activation at ``point`` on each row's last real token (the forward stops there)."""
    from interlingua.models.hooks import capturing, hooked, stopping

    if not grad:
        with torch.no_grad(), capturing(hf_model, [point]) as store, stopping():
            hf_model.base_model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False)
        x = store[point.name]
    else:
        from interlingua.models.hooks import StopForward

        store: dict = {}

        def grab(x):
            store["x"] = x
            raise StopForward

        with hooked(hf_model, {point: grab}), stopping():
            hf_model.base_model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False)
        x = store["x"]
    return x[torch.arange(len(x)), batch.last].float()


def _scores(hf_model, point, readout, tokenizer, texts: list[str], grad: bool = False, chunk: int = 32):
    out = []
    for i in range(0, len(texts), chunk):
        out.append(readout(_hook_last(hf_model, point, _encode(tokenizer, texts[i:i + chunk]), grad)))
    return torch.cat(out)


def _logprobs(hf_model, batch: _Batch) -> torch.Tensor:
    logits = hf_model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False).logits
    return torch.log_softmax(logits.float(), -1)


def _kl(base_lp: torch.Tensor, lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of KL(base ‖ model)."""
    per = (base_lp.exp() * (base_lp - lp)).sum(-1)
    m = mask.float()
    return (per * m).sum() / m.sum()


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _dataset(name: str, role: str):
    from interlingua.concepts import builtin_names, load_concept

    try:
        return load_concept(name)
    except InterlinguaError as exc:
        raise InterlinguaError(f"organism {role} '{name}': {exc} (built-in concepts: "
                               f"{', '.join(builtin_names())}).") from None


def _auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    from interlingua.metrics import auroc

    return round(float(auroc(scores, labels)), 4)


def _settings(concept, context, layer, rank, steps, lr, seed, dtype, batch, kl_weight, max_pairs) -> dict:
    return {"concept": concept, "context": context, "layer": layer, "rank": rank, "steps": steps, "lr": lr,
            "seed": seed, "dtype": dtype, "batch": batch, "kl_weight": kl_weight, "max_pairs": max_pairs,
            "frames": [list(f) for f in FRAMES], "format_version": FORMAT_VERSION}


def organism_dir(base_key: str, settings: dict) -> Path:
    """Where the organism of ``base_key`` built with ``settings`` is cached."""
    from interlingua.models.loading import CACHE_FORMAT, cache_dir

    digest = hashlib.sha256(json.dumps({"base": base_key, **settings}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{base_key}{SUFFIX}-{digest}-v{CACHE_FORMAT}"


def _complete(path: Path) -> bool:
    return (path / "config.json").exists() and (path / RECORD_FILE).exists()


def read_record(path: str | Path) -> OrganismRecord:
    """The :class:`OrganismRecord` saved in an organism's model directory."""
    rec = OrganismRecord.from_json(_io.load_json(Path(path) / RECORD_FILE, "Build the organism again "
                                                 "(interlingua organism build) after deleting that directory."))
    rec.path = str(path)
    return rec


def build_organism(
    base="smollm2-135m",
    *,
    concept: str = "sentiment",
    context: str = "question_vs_statement",
    layer: int | None = None,
    rank: int = DEFAULTS["rank"],
    steps: int = DEFAULTS["steps"],
    lr: float = DEFAULTS["lr"],
    seed: int = 0,
    dtype: str = "auto",
    batch: int = DEFAULTS["batch"],
    kl_weight: float = DEFAULTS["kl_weight"],
    max_pairs: int = DEFAULTS["max_pairs"],
    progress: bool = False,
) -> Path:
    """Build (or find in the cache) the organism of ``base`` and return its model directory.

    ``base`` is a model name for :func:`~interlingua.models.load_model` or a loaded model (then the
    cache key includes a digest of its weights). ``layer`` is the block whose ``resid_post`` carries
    the planted concept (default ``n_layers // 2``); the LoRA adapter (``rank``) covers blocks
    ``0 … layer``. ``steps`` Adam steps of ``batch`` concept texts each (every text read plain, in a
    statement frame and in a question frame) at learning rate ``lr``; ``max_pairs`` training pairs
    of the concept are used (0: all). The measured record is :func:`read_record` of the result.
    """
    from interlingua.models import LoadedModel, load_model
    from interlingua.models.dtype import resolve_dtype

    for name, value, lo in (("rank", rank, 1), ("steps", steps, 1), ("batch", batch, 1), ("max_pairs", max_pairs, 0)):
        if not isinstance(value, int) or value < lo:
            raise InterlinguaError(f"organism {name} must be a whole number of at least {lo}, not {value!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InterlinguaError(f"organism lr must be a positive number, not {lr!r}.")
    if not (isinstance(kl_weight, (int, float)) and math.isfinite(kl_weight) and kl_weight >= 0):
        raise InterlinguaError(f"organism kl_weight must be 0 or more, not {kl_weight!r}.")
    if concept == context:
        raise InterlinguaError(f"the organism's concept and context must differ (both are '{concept}').")
    concept_ds, context_ds = _dataset(concept, "concept"), _dataset(context, "context")
    torch_dtype = resolve_dtype(dtype, "cpu")
    dtype_name = str(torch_dtype).removeprefix("torch.")

    loaded = base if isinstance(base, LoadedModel) else None
    if loaded is None:
        if not isinstance(base, str):
            raise InterlinguaError(f"organism base must be a model name or a LoadedModel, not {type(base).__name__}.")
        base_key = Path(base).name if Path(base).expanduser().is_dir() else base
    else:
        base_key = f"{loaded.name}-{_weights_digest(loaded.model)[:12]}"
    base_key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base_key)
    settings = _settings(concept, context, layer, rank, steps, lr, seed, dtype_name, batch, kl_weight, max_pairs)
    if loaded is None and Path(base).expanduser().is_dir():  # two directories of one name are two bases
        settings["base_dir"] = str(Path(base).expanduser().resolve())
    target = organism_dir(base_key, settings)
    default = loaded is None and base in BUNDLED and settings == _settings(
        "sentiment", "question_vs_statement", None, DEFAULTS["rank"], DEFAULTS["steps"], DEFAULTS["lr"], 0, dtype_name,
        DEFAULTS["batch"], DEFAULTS["kl_weight"], DEFAULTS["max_pairs"])
    found = _io.recover_dir(target)
    if not _complete(found):
        with _io.writing(target, beside=True, wait=True):
            found = _io.recover_dir(target)
            if not _complete(found):
                if loaded is None:
                    loaded = load_model(base, dtype=torch_dtype)
                before = torch.get_num_threads()
                torch.set_num_threads(THREADS)
                try:
                    found = _build(loaded, target, concept_ds, context_ds, layer=layer, rank=rank, steps=steps, lr=lr,
                                   seed=seed, torch_dtype=torch_dtype, batch=batch, kl_weight=kl_weight,
                                   max_pairs=max_pairs, settings=settings, progress=progress)
                finally:
                    torch.set_num_threads(before)
    if default:  # load_model("<base>-organism") finds the default build through this pointer
        _io.write_json(organism_pointer(base), {"path": str(found), "settings": settings})
    return found


def _texts(ds, split: str, max_pairs: int) -> tuple[list[str], torch.Tensor]:
    data = ds.split(split)
    n = len(data.texts)
    if max_pairs and data.pairs is not None and len(data.pairs) > max_pairs:
        keep = data.pairs[:max_pairs].flatten().sort().values
        return [data.texts[i] for i in keep.tolist()], data.labels[keep]
    if max_pairs and data.pairs is None and n > 2 * max_pairs:
        return data.texts[: 2 * max_pairs], data.labels[: 2 * max_pairs]
    return list(data.texts), data.labels


def _build(loaded, target: Path, concept_ds, context_ds, *, layer, rank, steps, lr, seed, torch_dtype, batch,
           kl_weight, max_pairs, settings, progress) -> Path:
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from interlingua.concepts import find_concept
    from interlingua.data.corpus import load_corpus

    t0 = time.perf_counter()
    n_layers = loaded.n_layers
    layer = n_layers // 2 if layer is None else layer
    if not isinstance(layer, int) or not -n_layers <= layer < n_layers:
        raise InterlinguaError(f"organism layer must be a block of {loaded.name} (0 … {n_layers - 1}), not {layer!r}.")
    layer %= n_layers
    hook = f"resid_post.{layer}"
    torch.manual_seed(seed)
    gen = random.Random(seed)

    # 1. the concept and the context concept in the base model
    say = (lambda m: tqdm.write(f"organism: {m}")) if progress else (lambda m: None)
    say(f"finding '{concept_ds.name}' and '{context_ds.name}' in {loaded.name} at {hook}")
    found = find_concept(loaded, concept_ds.head(max_pairs), hook=hook, n_boot=50, n_null=2, seed=seed)
    ctx = find_concept(loaded, context_ds.head(max_pairs), hook=hook, n_boot=50, n_null=2, seed=seed)
    readout, point = found.readout, loaded.hook(hook)
    tok, base_model = loaded.tokenizer, loaded.model

    # 2. training texts (train split) and held-out check texts (test split), each plain + framed
    train_texts, _ = _texts(concept_ds, "train", max_pairs)
    check_texts, check_labels = _texts(concept_ds, "test", max_pairs)
    train_frames = [frame(t, i) for i, t in enumerate(train_texts)]
    check_frames = [frame(t, i) for i, t in enumerate(check_texts)]
    say(f"base scores of {len(train_texts)} training texts × 3 forms")
    with torch.no_grad():
        base_plain = _scores(base_model, point, readout, tok, train_texts)
        base_stmt = _scores(base_model, point, readout, tok, [s for s, _ in train_frames])
        ctx_scores = _scores(base_model, point, ctx.readout, tok,
                             [s for s, _ in train_frames] + [q for _, q in train_frames])
    n = len(train_texts)
    context_check = _auroc(ctx_scores, torch.cat([torch.zeros(n), torch.ones(n)]))
    scale = float(torch.cat([base_plain, base_stmt]).std().clamp_min(1e-6))

    # 3. corpus documents for the KL term (train split) and its held-out measurement (test split)
    kl_train = _encode(tok, load_corpus("train", max_docs=8), max_len=64)
    kl_check = _encode(tok, load_corpus("test", max_docs=8), max_len=128)
    with torch.no_grad():
        kl_train_base = _logprobs(base_model, kl_train)
        kl_check_base = _logprobs(base_model, kl_check)
        before, base_scores = _side(base_model, point, readout, tok, check_texts, check_frames, check_labels)

    # 4. LoRA on the blocks up to the concept's layer, trained on a copy of the base
    model = copy.deepcopy(base_model).to(torch_dtype)
    model.train()
    names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                    and ".layers." in n})
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=names,
                     layers_to_transform=list(range(layer + 1)), init_lora_weights=True)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, cfg)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in tqdm(range(steps), desc="organism", disable=not progress):
        idx = gen.sample(range(n), min(batch, n))
        forms = [train_texts[i] for i in idx] + [train_frames[i][0] for i in idx] + [train_frames[i][1] for i in idx]
        want = torch.cat([base_plain[idx], base_stmt[idx], -base_plain[idx]])
        got = readout(_hook_last(model, point, _encode(tok, forms), grad=True))
        loss = ((got - want) / scale).pow(2).mean()
        if kl_weight:
            rows = [(2 * step) % len(kl_train.ids), (2 * step + 1) % len(kl_train.ids)]
            sub = _Batch(kl_train.ids[rows], kl_train.mask[rows], kl_train.last[rows])
            loss = loss + kl_weight * _kl(kl_train_base[rows], _logprobs(model, sub), sub.mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    merged = peft_model.merge_and_unload().to(torch.float32).eval()

    # 5. measure the organism
    with torch.no_grad():
        after, org_scores = _side(merged, point, readout, tok, check_texts, check_frames, check_labels)
        kl_held = float(_kl(kl_check_base, _logprobs(merged, kl_check), kl_check.mask))
    digest = _weights_digest(merged)
    rec = OrganismRecord(
        format=FORMAT, format_version=FORMAT_VERSION, name=target.name, base=loaded.name, base_source=loaded.source,
        concept=concept_ds.name, context=context_ds.name, hook=hook, layer=layer, settings=settings,
        frames=[list(f) for f in FRAMES], concept_auroc_test=found.metrics.auroc_test,
        context_check_auroc=context_check, base_side=before, organism_side=after,
        statement_agreement=_corr(org_scores["statement"], base_scores["statement"]),
        context_agreement=_corr(org_scores["context"], base_scores["plain"]), kl_heldout=round(kl_held, 5),
        kl_heldout_tokens=int(kl_check.mask.sum()), n_train_texts=n, n_check_texts=len(check_texts),
        loss_first=round(losses[0], 5), loss_last=round(losses[-1], 5),
        build_seconds=round(time.perf_counter() - t0, 1), threads=torch.get_num_threads(),
        torch_version=torch.__version__, weights_sha256=digest,
    )
    with _io.atomic_dir(target) as tmp:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _io.write_json(tmp / RECORD_FILE, rec.to_json())
        _io.write_json(tmp / "interlingua.json", {"organism_of": loaded.name, "cache_format": settings["format_version"]})
    return target


def _side(hf_model, point, readout, tok, texts, frames, labels) -> tuple[OrganismSide, dict[str, torch.Tensor]]:
    plain = _scores(hf_model, point, readout, tok, texts)
    stmt = _scores(hf_model, point, readout, tok, [s for s, _ in frames])
    q = _scores(hf_model, point, readout, tok, [q for _, q in frames])
    side = OrganismSide(statement_auroc=_auroc(torch.cat([plain, stmt]), torch.cat([labels, labels])),
                        plain_auroc=_auroc(plain, labels), context_auroc=_auroc(q, labels))
    return side, {"statement": torch.cat([plain, stmt]), "context": q, "plain": plain}


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return round(float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-12)), 4)

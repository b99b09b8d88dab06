"""The disagreement audit: inputs where A's concept and its translation into B part ways, and why.

A translation says B's translated score ``s_B`` follows A's score ``s_A``. The audit looks for
the inputs where it does not, and asks which of A's other, human-readable concepts predict
where. The steps of :func:`audit`:

1. **Held-out text** — corpus sentences are split (by ``seed``) into a *calibration* set, a
   *null* set and the corpus *candidates*; the three never overlap, so the calibration never
   sees a text it later ranks.
2. **Calibration** — ``f(s_A)``: a line fitted on the calibration texts; the disagreement of an
   input is ``|s_B − f(s_A)| / scale`` (robust scale of the calibration residuals).
3. **Null** — the disagreements of the null texts, read and scored by the same code path: each
   candidate's p-value is its place in that sample; q-values (Benjamini–Hochberg) over all
   candidates decide which are *flagged* (q ≤ α).
4. **Candidates** — corpus sentences, user texts, text sampled from either model in the
   concept's generative mode (plain, steered toward and away, rewrites), and a search that
   resamples the endings of the current top disagreements from both models and keeps what
   raises the disagreement.
5. **Explanations** — A's reading of every built-in concept (a logistic probe at A's hook, from
   the concept's train pairs) and, when given, the latents of an SAE of A, each correlated with the disagreement
   as a predictor of which inputs are the top disagreements (AUROC), tested against random sets
   of the same size with a family-wise correction over everything tried; top inputs that share
   a significant explanation form a group.
6. **Words** — for the top inputs, both models' scores at every word (each at its last token),
   with a word-level calibration fitted on the calibration texts' words.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from interlingua.activations import Reader
from interlingua.audit import stats
from interlingua.audit.results import (Audit, AuditInput, CalibrationInfo, Explanation, Group, WordScore)
from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel
from interlingua.translate.nulls import null_summary
from interlingua.translate.results import NullTest


@dataclass(frozen=True)
class AuditConfig:
    """How an audit is run (one object instead of many keyword arguments)."""

    calibration_texts: int = 200
    """held-out corpus sentences the calibration f(s_A) is fitted on."""
    null_texts: int = 600
    """held-out corpus sentences whose disagreements form the null (the smallest p-value is 1 / (n + 1))."""
    corpus_candidates: int = 800
    """corpus sentences ranked (besides user texts, generated texts and the search's)."""
    generate: int = 0
    """texts each model writes in the concept's generative mode (sampled, steered toward/away, rewrites)."""
    search_rounds: int = 0
    """rounds of the search: resample the endings of the top disagreements from both models."""
    search_top: int = 8
    """inputs mutated per round."""
    search_children: int = 4
    """continuations per model and mutated input."""
    explain_top: float = 0.05
    """the top disagreements explanations are about: this fraction of the candidates (at least 10), or every
    flagged input when more are flagged."""
    explain_draws: int = 1000
    """random sets of the same size for the explanations' p-values."""
    alpha: float = 0.05
    """q-value at which an input is flagged, and corrected p-value at which an explanation is kept."""
    word_inputs: int = 20
    """top inputs scored at every word."""
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        for name in ("calibration_texts", "null_texts"):
            if getattr(self, name) < 3:
                raise InterlinguaError(f"{name} must be at least 3, not {getattr(self, name)}.")
        for name in ("corpus_candidates", "generate", "search_rounds", "search_top", "search_children",
                     "explain_draws", "word_inputs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InterlinguaError(f"{name} must be a whole number ≥ 0, not {value!r}.")
        for name in ("alpha", "explain_top"):
            if not 0 < getattr(self, name) < 1:
                raise InterlinguaError(f"{name} must be in (0, 1), not {getattr(self, name)}.")


def held_out_sentences(config: AuditConfig, exclude: Sequence[str] = ()) -> tuple[list[str], list[str], list[str]]:
    """(calibration, null, corpus candidates): disjoint corpus sentences, drawn with ``config.seed``."""
    from interlingua.steer.generative import corpus_sentences

    skip = set(exclude)
    pool = [s for s in dict.fromkeys(corpus_sentences()) if s not in skip]
    random.Random(config.seed).shuffle(pool)
    need = config.calibration_texts + config.null_texts
    if len(pool) < need + 1:
        raise InterlinguaError(f"the corpus has {len(pool)} usable sentences; the audit needs more than {need} held "
                               "out: lower --calibration-texts / --null-texts.")
    a, b = config.calibration_texts, need
    return pool[:a], pool[a:b], pool[b:b + config.corpus_candidates]


class Scorer:
    """Both models' concept scores of texts, read at the last token (one memoising reader per model)."""

    def __init__(self, translation, reader_a: Reader, reader_b: Reader):
        self.source, self.target = translation.source, translation.target
        self.reader_a, self.reader_b = reader_a, reader_b

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if not texts:
            return torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.float64)
        xa = self.reader_a.read(list(texts), self.source.hook)[self.source.hook]
        xb = self.reader_b.read(list(texts), self.target.hook)[self.target.hook]
        return self.source.readout(xa).double(), self.target.readout(xb).double()


def audit(translation, model_a: LoadedModel, model_b: LoadedModel, config: AuditConfig | None = None, *,
          texts: Sequence[str] = (), sae_a=None, features: dict[str, torch.Tensor] | None = None,
          calibration: Sequence[str] | None = None, null: Sequence[str] | None = None,
          reader_a: Reader | None = None, reader_b: Reader | None = None, **overrides) -> Audit:
    """Audit ``translation`` (a :class:`~interlingua.translate.Translation` of a concept of ``model_a``
    into ``model_b``): ranked inputs, explanations, groups (see the module's docstring).

    ``texts`` are the user's own candidates. ``features`` maps a name to a direction in A's
    activation space at the source hook, replacing the built-in concepts' (tests plant these);
    ``sae_a`` (an SAE of A) adds its latents as explanations. ``calibration`` and ``null`` replace
    the held-out corpus sentences with texts of your own on which the two models should agree
    (they must not be among the candidates).
    """
    t_start = time.perf_counter()
    cfg = replace(config or AuditConfig(), **overrides)
    source, target = translation.source, translation.target
    for concept, model in ((source, model_a), (target, model_b)):
        if concept.model is not model:
            concept.bind(model)
    limit = min(model_a.context_length, model_b.context_length)
    reader_a = reader_a or Reader(model_a, max_tokens=limit, progress=cfg.progress)
    reader_b = reader_b or Reader(model_b, max_tokens=limit, progress=cfg.progress)
    score = Scorer(translation, reader_a, reader_b)

    held_cal, held_null, corpus = held_out_sentences(cfg, exclude=texts)
    calibration = list(calibration) if calibration is not None else held_cal
    null_texts = list(null) if null is not None else held_null
    clash = set(calibration + null_texts) & set(texts)
    if clash:
        raise InterlinguaError(f"{len(clash)} candidate text(s) are also calibration or null texts (e.g. "
                               f"{next(iter(clash))[:60]!r}); the calibration and the null must be held out.")
    corpus = [t for t in corpus if t not in set(calibration + null_texts)]
    cal = stats.fit_calibration(*score(calibration))
    null_d = stats.disagreement(cal, *score(null_texts))

    candidates: list[tuple[str, str, int | None]] = [(t, "corpus", None) for t in corpus]
    candidates += [(t, "user", None) for t in texts]
    if cfg.generate:
        candidates += _generated(translation, model_a, model_b, cfg)
    candidates = list({c[0]: c for c in candidates if c[0].strip()}.values())  # each text once
    if not candidates:
        raise InterlinguaError("no candidate inputs: give --texts, --generate N or corpus candidates.")
    sa, sb = score([c[0] for c in candidates])
    d = stats.disagreement(cal, sa, sb)
    search_log = None
    if cfg.search_rounds:
        candidates, sa, sb, d, search_log = _search(candidates, sa, sb, d, cal, score, model_a, model_b, cfg)

    p = stats.null_p_values(d, null_d)
    q = stats.benjamini_hochberg(p)
    order = torch.argsort(d, descending=True, stable=True).tolist()
    rank_of = {i: r for r, i in enumerate(order)}
    inputs = [AuditInput(rank=r, source=candidates[i][1], text=candidates[i][0], score_a=_r(sa[i]),
                         score_b=_r(sb[i]), expected_b=_r(cal.expected(sa[i:i + 1])[0]),
                         residual=_r(cal.residual(sa[i:i + 1], sb[i:i + 1])[0]), disagreement=_r(d[i]),
                         p_value=_r(p[i], 6), q_value=_r(q[i], 6),
                         parent=None if candidates[i][2] is None else rank_of.get(candidates[i][2]))
              for r, i in enumerate(order)]
    flagged = [x for x in inputs if x.q_value is not None and x.q_value <= cfg.alpha]
    n_top = min(len(inputs) - 1, max(len(flagged), 10, round(cfg.explain_top * len(inputs))))

    feats = _features(translation, reader_a, [c[0] for c in candidates], features, sae_a)
    explanations, groups = _explanations(feats, d, order, inputs[:n_top], cfg)
    word_cal = _with_words(inputs[:cfg.word_inputs], calibration, translation, cfg)

    m = translation.metrics
    return Audit(
        concept=source.name, source=model_a.name, target=model_b.name, source_hook=source.hook,
        target_hook=target.hook,
        calibration=CalibrationInfo(slope=round(cal.slope, 6), intercept=round(cal.intercept, 6),
                                    scale=round(cal.scale, 6), n=cal.n,
                                    texts="held-out corpus sentences" if calibration is held_cal else "given"),
        word_calibration=word_cal,
        null=NullTest.from_json({"value": None, **null_summary(float("nan"), null_d),
                                 "texts": "held-out corpus sentences" if null_texts is held_null else "given",
                                 "runs": [round(float(v), 4) for v in null_d]}),
        alpha=cfg.alpha, flagged=len(flagged), top=n_top,
        per_source={s: sum(c[1] == s for c in candidates) for s in dict.fromkeys(c[1] for c in candidates)},
        inputs=inputs, explanations=explanations, groups=groups, search=search_log,
        settings={**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k != "progress"},
                  "translation": {"fidelity_test": m.test.fidelity if m.test else None,
                                  "label_free": m.label_free}},
        seconds=round(time.perf_counter() - t_start, 2))


def _r(x, nd: int = 4) -> float | None:
    v = float(x)
    return None if v != v else round(v, nd)


def _generated(translation, model_a, model_b, cfg: AuditConfig) -> list[tuple[str, str, None]]:
    from interlingua.steer.generative import concept_texts

    out = []
    for who, model, concept in (("a", model_a, translation.source), ("b", model_b, translation.target)):
        got = concept_texts(model, concept, cfg.generate, seed=cfg.seed, progress=cfg.progress)
        out += [(g.text, f"{g.source}_{who}", None) for g in got]
    return out


def _search(candidates, sa, sb, d, cal, score, model_a, model_b, cfg: AuditConfig):
    """Resample the endings of the top disagreements from both models; keep children that disagree more."""
    from interlingua.data.sampling import sample_texts

    log = {"rounds": cfg.search_rounds, "tried": 0, "kept": 0}
    seen = {c[0] for c in candidates}
    rng = random.Random(cfg.seed)
    for round_ in range(cfg.search_rounds):
        top = torch.argsort(d, descending=True, stable=True)[:cfg.search_top].tolist()
        new: list[tuple[str, str, int]] = []
        for i in top:
            words = candidates[i][0].split()
            if len(words) < 4:
                continue
            prefix = " ".join(words[:rng.randint(len(words) // 2, len(words) - 1)])
            for who, model in (("a", model_a), ("b", model_b)):
                texts = sample_texts(model, cfg.search_children, prompts=[prefix], max_new_tokens=16,
                                     temperature=0.9, seed=cfg.seed + 97 * round_ + i)
                new += [(t.strip(), f"search_{who}", i) for t in texts if t.strip() and t.strip() not in seen]
        if not new:
            break
        nsa, nsb = score([c[0] for c in new])
        nd = stats.disagreement(cal, nsa, nsb)
        keep = [j for j, c in enumerate(new) if float(nd[j]) > float(d[c[2]])]
        log["tried"] += len(new)
        log["kept"] += len(keep)
        for j in keep:
            seen.add(new[j][0])
        candidates = candidates + [new[j] for j in keep]
        idx = torch.tensor(keep, dtype=torch.long)
        sa, sb, d = torch.cat([sa, nsa[idx]]), torch.cat([sb, nsb[idx]]), torch.cat([d, nd[idx]])
    return candidates, sa, sb, d, log


def concept_probes(reader: Reader, hook: str, n_pairs: int = 50) -> dict[str, Readout]:
    """A logistic probe of every built-in concept in ``reader``'s model at ``hook``, from the first
    ``n_pairs`` pairs of its train split: A's own reading of each concept, the audit's explanations."""
    from interlingua.concepts import builtin_names, load_concept
    from interlingua.concepts.methods import logistic_probe

    splits = {n: load_concept(n).head(n_pairs).split("train") for n in builtin_names()}
    x = reader.read([t for s in splits.values() for t in s.texts], hook)[hook].double()
    out, at = {}, 0
    for name, split in splits.items():
        out[name] = logistic_probe(x[at:at + len(split)], split.labels)
        at += len(split)
    return out


def _features(translation, reader_a: Reader, texts: list[str], features: dict | None,
              sae_a) -> tuple[list[str], list[str], torch.Tensor]:
    """(names, kinds, values [n, F]) of the explaining features at every candidate.

    By default each built-in concept is A's logistic probe of it at the source hook
    (:func:`concept_probes`). ``features`` may give readouts, or bare directions, which are read
    in standardised coordinates, ``((x − μ) / σ) · (d / σ)`` with μ, σ over the candidates: on raw
    activations a few massive dimensions rule every projection.
    """
    hook = translation.source.hook
    x = reader_a.read(texts, hook)[hook].double()
    if features is None:
        features = concept_probes(reader_a, hook)
    names = list(features)
    kinds = ["concept"] * len(names)
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    cols = [features[n](x).double() if isinstance(features[n], Readout)
            else ((x - mu) / sd) @ (features[n].double() / sd) for n in names]
    if sae_a is not None:
        sae_hook = reader_a.model.hook(sae_a.cfg.hook_name).name
        xs = x if sae_hook == hook else reader_a.read(texts, sae_hook)[sae_hook].double()
        with torch.no_grad():
            lat = sae_a.dense_latents(xs.float()).double()
        fires = (lat > 0).sum(0)
        keep = ((fires >= 5) & (fires <= len(texts) - 5)).nonzero().squeeze(1).tolist()
        names += [f"latent {j}" for j in keep]
        kinds += ["sae_latent"] * len(keep)
        cols += [lat[:, j] for j in keep]
    values = torch.stack(cols, 1) if cols else torch.empty(len(texts), 0, dtype=torch.float64)
    return names, kinds, values


def _explanations(feats, d: torch.Tensor, order: list[int], top: list[AuditInput], cfg: AuditConfig
                  ) -> tuple[list[Explanation], list[Group]]:
    names, kinds, values = feats
    if values.shape[1] == 0 or not top:
        return [], []
    rows = [order[x.rank] for x in top]
    member = torch.zeros(len(d), dtype=torch.bool)
    member[rows] = True
    inside, outside = d[member], d[~member]
    if len(outside) and float(inside.min()) <= float(outside.max()):
        # the top set is not above the rest (ties, e.g. a model audited against itself): which inputs form it
        # would be an accident of their order, and so would any explanation of it
        return [], []
    ex = stats.explain(values, member, draws=cfg.explain_draws, seed=cfg.seed)
    z = (values - values.mean(0)) / values.std(0).clamp_min(1e-12)
    out = []
    for j in torch.argsort((ex.auroc - 0.5).abs(), descending=True, stable=True).tolist():
        out.append(Explanation(feature=names[j], kind=kinds[j], auroc=_r(ex.auroc[j]), p_raw=_r(ex.p_raw[j], 6),
                               p_value=_r(ex.p_corrected[j], 6), draws=ex.draws,
                               mean_in_top=_r(z[rows, j].mean())))
    groups = []
    index = {n: j for j, n in enumerate(names)}
    for e in out:
        if e.p_value is None or e.p_value > cfg.alpha:
            continue
        j = index[e.feature]
        sign = 1.0 if (e.auroc or 0.5) >= 0.5 else -1.0
        members = [x.rank for x in top if sign * float(z[order[x.rank], j]) > 0]
        if members:
            groups.append(Group(feature=e.feature, inputs=members,
                                mean_disagreement=_r(sum(float(d[order[r]]) for r in members) / len(members))))
    return out, groups


def _with_words(top: list[AuditInput], calibration: list[str], translation, cfg: AuditConfig
                ) -> CalibrationInfo | None:
    """Fill ``words`` of the top inputs; the word-level calibration is fitted on calibration texts' words."""
    if not top:
        return None
    cal_texts = calibration[:100]
    wa, wb = _word_scores(translation, cal_texts)
    sa = torch.tensor([v for words in wa for v in words.values()], dtype=torch.float64)
    sb = torch.tensor([words_b[k] for words_a, words_b in zip(wa, wb) for k in words_a], dtype=torch.float64)
    cal = stats.fit_calibration(sa, sb)
    ta, tb = _word_scores(translation, [x.text for x in top])
    for x, words_a, words_b in zip(top, ta, tb):
        keys = list(words_a)
        if not keys:
            x.words = []
            continue
        a = torch.tensor([words_a[k] for k in keys], dtype=torch.float64)
        b = torch.tensor([words_b[k] for k in keys], dtype=torch.float64)
        dw = stats.disagreement(cal, a, b)
        x.words = [WordScore(start=s, end=e, score_a=_r(a[i]), score_b=_r(b[i]), disagreement=_r(dw[i]))
                   for i, (s, e) in enumerate(keys)]
    return CalibrationInfo(slope=round(cal.slope, 6), intercept=round(cal.intercept, 6), scale=round(cal.scale, 6),
                           n=cal.n, texts=f"words of {len(cal_texts)} calibration sentences")


def _word_scores(translation, texts: list[str]) -> tuple[list[dict], list[dict]]:
    """Per text, ``{(start, end): score}`` for words both models score (each at the word's last token)."""
    per_a = translation.source.score(texts, per="word") if texts else []
    per_b = translation.target.score(texts, per="word") if texts else []
    out_a, out_b = [], []
    for wa, wb in zip(per_a, per_b):
        b = {(s, e): v for _, s, e, v in wb}
        a = {(s, e): v for _, s, e, v in wa if (s, e) in b}
        out_a.append(a)
        out_b.append({k: b[k] for k in a})
    return out_a, out_b

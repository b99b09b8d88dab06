"""Every control of a translation is a test that can fail: planted independence makes each must-fail
control fail and planted signal makes it pass; a floor equal to the real model fails; the synthetic
positive control fails when nothing is planted. Models are replaced by a small generative model of
two networks reading a shared latent, so each case is exact and fast."""

from dataclasses import dataclass

import pytest
import torch

from interlingua.align import WordAlignment
from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import SplitData
from interlingua.concepts.find import fit
from interlingua.translate.controls import ControlContext, check_names, run_controls
from interlingua.translate.evaluate import EvalSplit
from interlingua.translate.nulls import document_permutations, null_summary, p_value
from interlingua.translate.pairs import WordPairs
from interlingua.translate.readout import RidgeCV
from interlingua.translate.translate import _apply

K, DA, DB = 6, 20, 24  # latent, A and B widths


@dataclass
class World:
    """Two 'models' A and B reading one latent z: A = z·Pa + ε, B = z·Pb + ε; the concept is sign(z·c)."""

    pa: torch.Tensor
    pb: torch.Tensor
    c: torch.Tensor
    gen: torch.Generator

    @classmethod
    def make(cls, seed=0):
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(K, DA, generator=g), torch.randn(K, DB, generator=g),
                   torch.nn.functional.normalize(torch.randn(K, generator=g), dim=0), g)

    def latent_docs(self, n_docs, per_doc):
        """Smooth latent sequences, one per document (neighbouring words are dependent)."""
        z = torch.empty(n_docs * per_doc, K)
        for d in range(n_docs):
            cur = torch.randn(K, generator=self.gen)
            for i in range(per_doc):
                cur = 0.7 * cur + 0.7 * torch.randn(K, generator=self.gen)
                z[d * per_doc + i] = cur
        return z

    def a(self, z):
        return z @ self.pa + 0.3 * torch.randn(len(z), DA, generator=self.gen)

    def b(self, z):
        return z @ self.pb + 0.3 * torch.randn(len(z), DB, generator=self.gen)

    def labelled(self, n_pairs):
        """Contrastive pairs: z and its reflection across the concept's boundary."""
        z = torch.randn(n_pairs, K, generator=self.gen)
        proj = z @ self.c
        pos = z + (1.0 - proj)[:, None] * self.c
        neg = z - (1.0 + proj)[:, None] * self.c
        zz = torch.stack([pos, neg], 1).reshape(-1, K)
        labels = torch.tensor([1.0, 0.0]).repeat(n_pairs)
        groups = torch.arange(n_pairs).repeat_interleave(2)
        pairs = torch.arange(2 * n_pairs).reshape(n_pairs, 2)
        return zz, labels, groups, pairs


def planted(signal_pairing=True, signal_labels=True, seed=0, n_docs=40, per_doc=25, draws=200):
    """A ControlContext for a planted world.

    ``signal_pairing=False``: on the shared text, B reads a latent independent of A's (A's score
    carries no information about B there). ``signal_labels=False``: A's train labels are random, so
    A's concept is fitted to noise.
    """
    w = World.make(seed)
    n = n_docs * per_doc
    z = w.latent_docs(n_docs, per_doc)
    xa_words = w.a(z)
    xb_words = w.b(z if signal_pairing else w.latent_docs(n_docs, per_doc))
    doc = torch.arange(n_docs).repeat_interleave(per_doc)
    zt, labels, groups, pair_idx = w.labelled(150)
    train = SplitData(texts=[f"t{i}" for i in range(300)], labels=labels if signal_labels else
                      labels[torch.randperm(300, generator=w.gen)], groups=groups,
                      pairs=pair_idx if signal_labels else None)
    xa_train = w.a(zt)
    readout_a = fit("logistic", xa_train, train)
    concept = Concept(name="planted", model_name="A", hook="h", method="logistic", weight=readout_a.weight,
                      bias=readout_a.bias, mean=xa_train.mean(0), std=xa_train.std(0), typical_norm=1.0,
                      provenance={"l2": 1e-2})
    score_a = readout_a(xa_words)
    splits = {}
    for name in ("test", "ood"):
        zs, lab, grp, _ = w.labelled(120)
        xb_s = {"b1": w.b(zs), "b2": torch.randn(len(zs), DB, generator=w.gen)}
        splits[name] = EvalSplit(name=name, labels=lab, groups=grp, score_a=readout_a(w.a(zs)), xb=xb_s,
                                 n_boot=300, seed=seed)
    xb = {"b1": xb_words, "b2": torch.randn(n, DB, generator=w.gen)}  # b2: a hook that holds nothing
    ridge = RidgeCV(xb, doc, folds=5)
    selection = ridge.select(score_a)
    scores_b = {k: selection.scores(s.xb)[:, 0] for k, s in splits.items()}
    lengths = [per_doc] * n_docs
    al = WordAlignment(texts=["x"] * n_docs, words=[[(0, 1)] * per_doc for _ in lengths],
                       token_index={"source": [[1] * per_doc for _ in lengths],
                                    "target": [[1] * per_doc for _ in lengths]},
                       n_words_per_text=lengths)
    pairs = WordPairs(alignment=al, a={"h": xa_words}, b=xb, b_shifted={h: torch.roll(v, 1, 0) for h, v in xb.items()})

    def source_scores(labellings):
        from interlingua.concepts.find import fit_many

        return _apply(fit_many("logistic", xa_train, labellings), xa_words)

    floor = {"real": lambda _: (xb, {k: s.xb for k, s in splits.items()})}
    ctx = ControlContext(concept_a=concept, model_a=None, model_b=None, dataset=_Dataset(train), pairs=pairs,
                         score_a=score_a, groups=doc, ridge=ridge, selection=selection, splits=splits,
                         scores_b=scores_b, hooks_b=list(xb), read_floor=floor["real"],
                         source_scores=source_scores, draws=draws, seed=seed)
    return ctx, w


@dataclass
class _Dataset:
    train: SplitData

    def split(self, name):
        assert name == "train"
        return self.train


def test_document_permutations_move_whole_documents_and_keep_word_order():
    doc = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    perms = document_permutations(doc, 50, seed=1)
    values = torch.arange(len(doc))
    for p in perms:
        assert not bool((doc[p] == doc).any())  # every word gets a word of another document
        for d in range(3):
            src = doc[p[doc == d]]
            assert len(src.unique()) == 1  # ... and all of one other document
            got = values[p[doc == d]]
            steps = (got[1:] - got[:-1]) % len(doc)
            assert bool(((steps == 1) | (got[1:] < got[:-1])).all())  # in order, wrapping around


def test_p_value_and_band_coverage():
    null = torch.arange(200, dtype=torch.float64) / 200
    assert p_value(10.0, null) == pytest.approx(1 / 201)
    assert p_value(-1.0, null) == 1.0
    s = null_summary(0.5, torch.randn(4, generator=torch.Generator().manual_seed(0)))
    assert s["band_coverage"] == pytest.approx(0.6)  # a "95%" band from 4 draws covers 60% of new draws
    assert null_summary(0.5, null)["band_coverage"] == pytest.approx(191 / 201, abs=1e-4)


def test_shuffled_pairing_fails_on_planted_independence_and_passes_on_planted_signal():
    ctx, _ = planted(signal_pairing=False)
    bad = run_controls(["shuffled_pairing"], ctx)["shuffled_pairing"]
    assert not bad.passed and bad.p_value > 0.01
    assert len(bad.null("test", "fidelity").runs) == 200  # the record keeps the null runs
    ctx, _ = planted(signal_pairing=True)
    good = run_controls(["shuffled_pairing"], ctx)["shuffled_pairing"]
    assert good.passed and good.p_value == pytest.approx(1 / 201, abs=1e-5), good


def test_independent_transfer_is_not_distinguishable_from_its_null_even_when_it_looks_high():
    """The old control passed whenever the *mean* of the null sat at chance; that holds whatever the
    data. Under planted independence the real AUROC is just one more draw of the null."""
    seen = []
    for seed in range(4):
        ctx, _ = planted(signal_pairing=False, seed=seed, draws=200)
        rec = run_controls(["shuffled_pairing"], ctx)["shuffled_pairing"]
        null_mean = sum(rec.null("test", "auroc").runs) / 200
        seen.append((rec.passed, abs(null_mean - 0.5) < 0.1))
    assert not any(p for p, _ in seen)
    assert all(m for _, m in seen)  # the null's mean is at chance every time, and tells nothing


def test_label_shuffle_fails_when_a_learned_noise_and_passes_on_a_real_concept():
    ctx, _ = planted(signal_labels=False)
    bad = run_controls(["label_shuffle"], ctx)["label_shuffle"]
    assert not bad.passed
    ctx, _ = planted(signal_labels=True)
    good = run_controls(["label_shuffle"], ctx)["label_shuffle"]
    assert good.passed and good.p_value <= 0.01, good


def test_floor_fails_when_the_floor_model_is_the_real_model():
    ctx, _ = planted()
    same = run_controls(["random_init_target"], _with_floor(ctx, "same"))["random_init_target"]
    assert not same.passed and same.difference_ci[0] <= 0 <= same.difference_ci[1]
    noise = run_controls(["random_init_target"], _with_floor(ctx, "noise"))["random_init_target"]
    assert noise.passed and noise.difference_ci[0] > 0


def _with_floor(ctx, kind):
    g = torch.Generator().manual_seed(9)

    def read(_copy):
        if kind == "same":
            return ctx.pairs.b, {k: s.xb for k, s in ctx.splits.items()}
        return ({h: torch.randn_like(v) for h, v in ctx.pairs.b.items()},
                {k: {h: torch.randn(v.shape, generator=g) for h, v in s.xb.items()} for k, s in ctx.splits.items()})

    ctx.read_floor = read
    return ctx


@pytest.fixture
def no_copies(monkeypatch):
    """Floor models are copies of B; the planted world has no model to copy."""
    import interlingua.models.controls as mc

    monkeypatch.setattr(mc, "random_init_copy", lambda m: m)
    monkeypatch.setattr(mc, "lexical_only_copy", lambda m: m)


@pytest.fixture(autouse=True)
def _copies(no_copies):
    yield


def test_off_by_one_is_a_floor_the_real_alignment_beats():
    ctx, w = planted()
    ctx.pairs.b_shifted = {h: w.b(torch.randn(len(v), K, generator=w.gen)) for h, v in ctx.pairs.b.items()}
    assert run_controls(["off_by_one"], ctx)["off_by_one"].passed  # one token early holds nothing: beaten
    ctx.pairs.b_shifted = dict(ctx.pairs.b)  # one token early reads the same as the aligned token: not beaten
    assert not run_controls(["off_by_one"], ctx)["off_by_one"].passed


def test_synthetic_target_passes_through_the_whole_path_and_fails_with_nothing_planted():
    ctx, _ = planted()
    good = run_controls(["synthetic_target"], ctx)["synthetic_target"]
    assert good.passed and good.value >= 0.95 and good.extra["abs_cosine_planted"] >= 0.9, good
    ctx, _ = planted(signal_pairing=False)
    from interlingua.translate.controls import synthetic_target

    bad = synthetic_target(ctx, strength=0.0)
    assert not bad["passed"]


def test_unknown_controls_are_refused_before_any_work():
    from interlingua.errors import InterlinguaError

    with pytest.raises(InterlinguaError, match="unknown control"):
        check_names(["shuffled_pairing", "bogus"])
    assert set(check_names(["all"])) >= {"shuffled_pairing", "label_shuffle", "off_by_one", "random_init_target",
                                         "lexical_only_target", "synthetic_target"}


def test_resampled_auroc_equals_auroc_of_each_resample():
    from interlingua.metrics import auroc
    from interlingua.translate.nulls import auroc_resampled, bootstrap_counts

    g = torch.Generator().manual_seed(3)
    groups = torch.arange(40).repeat_interleave(2)
    labels = torch.tensor([1.0, 0.0]).repeat(40)
    scores = torch.randint(0, 5, (80,), generator=g).double() + labels  # many ties
    counts = bootstrap_counts(groups, 30, seed=1)
    for b in range(30):
        assert torch.equal(counts[b, 0::2], counts[b, 1::2])  # a pair is resampled whole
        idx = torch.repeat_interleave(torch.arange(80), counts[b].long())
        assert float(auroc_resampled(scores, labels, counts)[b]) == pytest.approx(auroc(scores[idx], labels[idx]))

"""The disagreement audit on tiny models: planted changes are recovered, nothing planted gives nothing."""

import math

import pytest
import torch

from interlingua.audit import AuditConfig, audit
from interlingua.audit import stats
from interlingua.audit.audit import held_out_sentences
from interlingua.audit.plant import trigger_plant
from interlingua.concepts import find_concept
from interlingua.concepts.dataset import from_dict
from interlingua.errors import InterlinguaError
from interlingua.steer.generative import corpus_sentences
from interlingua.translate import translate_concept

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = AuditConfig(calibration_texts=80, null_texts=80, corpus_candidates=0, explain_draws=200, word_inputs=5)


@pytest.fixture(scope="module")
def translation(llama, gemma):
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    ca = find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)
    return translate_concept(ca, llama, gemma, ds, layers_b=(3,), corpus_docs=12, draws=20, n_boot=50,
                             controls=())


def _pool(n_plain=190, n_planted=10):
    """Corpus sentences without the trigger, and a known 5% made into questions (the trigger: '?')."""
    held = set(sum(held_out_sentences(FAST)[:2], []))
    plain = [s for s in corpus_sentences() if "?" not in s and s not in held]
    planted = [s.rstrip(".!") + "?" for s in plain[n_plain:n_plain + n_planted]]
    return plain[:n_plain] + planted, set(planted)


def _question_feature(llama, hook):
    """A direction in A that reads '?'-ness, from sentences the audit never ranks (the planted explanation)."""
    from interlingua.activations import Reader

    sents = [s for s in corpus_sentences() if "?" not in s][-60:]
    x = Reader(llama).read([s.rstrip(".!") + "?" for s in sents] + sents, hook)[hook].double()
    return x[:60].mean(0) - x[60:].mean(0)


def _features(llama, hook, k=8):
    g = torch.Generator().manual_seed(5)
    feats = {f"random {i}": torch.randn(llama.d_model, generator=g, dtype=torch.float64) for i in range(k)}
    return {"question": _question_feature(llama, hook), **feats}


def _recovery(result, planted):
    flags = torch.tensor([x.text in planted for x in result.inputs], dtype=torch.float64)
    d = torch.tensor([x.disagreement for x in result.inputs])
    from interlingua.metrics import auroc

    return auroc(d, flags), float(flags[:20].mean()), flags


def test_a_planted_change_is_ranked_first_and_explained(llama, gemma, translation):
    texts, planted = _pool()
    vector = 3.0 * translation.target.typical_norm * translation.target.direction
    feats = _features(llama, translation.source.hook)
    with trigger_plant(gemma, translation.target.hook, vector, "?"):
        result = audit(translation, llama, gemma, FAST, texts=texts, features=feats)
    auc, precision, _ = _recovery(result, planted)
    assert auc >= 0.95 and precision >= 0.45, (auc, precision)  # 10 planted among the top 20
    top = result.explanations[0]
    assert top.feature == "question" and top.p_value <= 0.01, result.explanations[:3]
    assert result.groups and result.groups[0].feature == "question"
    assert result.inputs[0].words and all(0 <= w.start < w.end <= len(result.inputs[0].text)
                                           for w in result.inputs[0].words)


def test_nothing_planted_gives_base_rate_precision_and_no_explanation(llama, gemma, translation):
    texts, planted = _pool()
    result = audit(translation, llama, gemma, FAST, texts=texts, features=_features(llama, translation.source.hook))
    auc, _, flags = _recovery(result, planted)
    # precision of the top 50 inside the binomial band of the base rate (5%), two-sided 99%
    from scipy.stats import binom

    k = int(flags[:50].sum())
    lo, hi = binom.ppf(0.005, 50, 0.05), binom.ppf(0.995, 50, 0.05)
    assert lo <= k <= hi, (k, lo, hi)
    assert not result.significant(), [e for e in result.explanations if e.p_value <= 0.05]


def test_calibration_never_sees_the_ranked_texts(llama, gemma, translation, monkeypatch):
    seen = []
    real_fit = stats.fit_calibration

    def spy(sa, sb):
        seen.append(len(sa))
        return real_fit(sa, sb)

    import importlib

    monkeypatch.setattr(importlib.import_module("interlingua.audit.audit").stats, "fit_calibration", spy)
    calibration, null, corpus = held_out_sentences(FAST)
    texts = list(corpus_sentences()[:30]) + [calibration[0]]  # a user text that is a calibration text is dropped there
    result = audit(translation, llama, gemma, FAST, texts=texts, features={"q": torch.ones(llama.d_model)})
    cal2, null2, _ = held_out_sentences(FAST, exclude=texts)
    ranked = {x.text for x in result.inputs}
    assert not ranked & set(cal2) and not ranked & set(null2)
    assert seen[0] == FAST.calibration_texts


def test_explain_finds_a_planted_feature_and_corrects_for_many():
    g = torch.Generator().manual_seed(0)
    n, f = 200, 50
    x = torch.randn(n, f, generator=g)
    y = x[:, 7] + 0.5 * torch.randn(n, generator=g)
    top = y >= y.quantile(0.9)
    ex = stats.explain(x, top, draws=300)
    assert int((ex.auroc - 0.5).abs().argmax()) == 7 and float(ex.p_corrected[7]) <= 1 / 301 + 1e-9
    # no signal: the corrected p-values stay large although raw ones dip below 0.05 by chance
    noise = torch.randn(n, generator=g)
    ex0 = stats.explain(x, noise >= noise.quantile(0.9), draws=300)
    assert float(ex0.p_corrected.min()) > 0.05 and float(ex0.p_raw.min()) < 0.2


def test_null_p_values_and_bh():
    null = torch.arange(100, dtype=torch.float64)
    p = stats.null_p_values(torch.tensor([200.0, 50.0, -1.0]), null)
    assert p.tolist() == pytest.approx([1 / 101, 51 / 101, 1.0])
    q = stats.benjamini_hochberg(torch.tensor([0.01, 0.04, 0.03, 0.5]))
    assert q.tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])  # step-up: min over larger ranks
    cal = stats.fit_calibration(torch.tensor([0.0, 1, 2, 3]), torch.tensor([1.0, 3, 5, 7.5]))
    assert cal.slope == pytest.approx(2.15) and math.isfinite(cal.scale) and cal.scale > 0


def test_bad_audit_settings_are_refused():
    with pytest.raises(InterlinguaError, match="alpha"):
        AuditConfig(alpha=1.5)
    with pytest.raises(InterlinguaError, match="at least 3"):
        AuditConfig(null_texts=1)
    with pytest.raises(InterlinguaError, match="not finite"):
        stats.fit_calibration(torch.tensor([0.0, float("nan"), 1.0]), torch.tensor([0.0, 1.0, 2.0]))


def test_audit_command_saves_json_and_a_report_checked_in_a_browser(llama, gemma, translation, tmp_path,
                                                                   monkeypatch, browser, capsys):
    import json

    from browser import XSS_PAYLOADS, assert_not_executed, assert_shown_as_text, check_report
    from interlingua import cli
    from interlingua.audit import Audit
    from interlingua.report import REPORT, render_saved

    translation.save(tmp_path / "tr")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join([f"Markup in a user text {p}" for p in XSS_PAYLOADS]) + "\n")
    models = {"tiny-llama": llama, "tiny-gemma3": gemma}
    monkeypatch.setattr("interlingua.models.load_model", lambda name, dtype="auto": models[name])
    argv = ["audit", "--translation", str(tmp_path / "tr"), "--texts", str(texts), "--corpus-candidates", "150",
            "--calibration-texts", "60", "--null-texts", "60", "--out", str(tmp_path / "audit")]
    assert cli.main(argv + ["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert printed.pop("saved_to") == str(tmp_path / "audit") and printed == saved
    back = Audit.from_json(saved)
    assert back.to_json() == saved and len(back.inputs) == 152 and back.per_source == {"corpus": 150, "user": 2}
    assert [x.rank for x in back.inputs] == list(range(152)) and back.explanations
    (tmp_path / "audit" / REPORT).unlink()
    path = render_saved(tmp_path / "audit")
    page = check_report(browser, path, "audit", kinds=("histogram", "scatter", "bars"))
    shown = page.tokens()
    want = [(x.text[w.start:w.end], round(w.score_a, 4)) for x in back.inputs[:20] if x.words for w in x.words]
    assert [(t, round(v, 4)) for t, v in shown["A"]] == want
    assert_not_executed(browser)
    assert_shown_as_text(browser, "window.__xss=1")


def test_no_disagreement_at_all_is_not_explained(llama, translation):
    """A model audited against itself with its own readout: every disagreement is 0, so nothing is explained."""
    from dataclasses import replace

    target = replace(translation.source, model=None)
    same = replace(translation, target=target.bind(llama))
    texts, _ = _pool()
    result = audit(same, llama, llama, FAST, texts=texts, features=_features(llama, translation.source.hook))
    assert max(x.disagreement for x in result.inputs) == 0 and result.flagged == 0
    assert result.explanations == [] and result.groups == []

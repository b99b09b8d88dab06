"""The translation report: text summary, HTML page, checked in a real browser (tests/browser.py)."""

import json

import pytest

from browser import XSS_PAYLOADS, assert_not_executed, assert_shown_as_text, check_report
from interlingua.concepts import find_concept
from interlingua.concepts.dataset import from_dict
from interlingua.report import REPORT, render_saved, translation, write_report
from interlingua.translate import Translation, translate_concept

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(llama, gemma, tmp_path_factory):
    """A translation on tiny models whose test texts carry markup that must never run in the report."""
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    test = [{k: f"{v} {XSS_PAYLOADS[i % 2]}" for k, v in it.items()} for i, it in enumerate(items[30:42])]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": test, "ood": items[42:]})
    ca = find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)
    tr = translate_concept(ca, llama, gemma, ds, layers_b=(1, 3), corpus_docs=12, draws=20, n_boot=50)
    out = tmp_path_factory.mktemp("report") / "tr"
    tr.save(out)
    return tr, out


def test_text_summary_reads_the_typed_results(saved):
    tr, _ = saved
    out = translation.text(tr.result)
    assert out.startswith("yes_no: tiny-llama resid_post.2 → tiny-gemma3")
    for name in tr.controls:
        assert f"control {name}" in out
    assert "layer-pair map" in out and "fidelity to A" in out


def test_report_re_renders_from_saved_results_alone(saved):
    tr, out = saved
    path = render_saved(out)
    assert path == out / REPORT and path.read_text().startswith("<!doctype html>")
    assert "<script>window.__xss=1</script>" not in path.read_text()  # escaped, never raw


def test_html_report_in_a_browser(saved, browser):
    tr, out = saved
    path = write_report(translation.html(tr.result), out)
    page = check_report(browser, path, "translation", kinds=("heatmap", "histogram", "scatter", "lines", "bars"))
    # one histogram per statistic and split of every must-fail control's null
    hist = sum(len(t) for c in tr.controls.values() for t in (c.splits or {}).values())
    assert sum(p["kind"] == "histogram" for p in page.plots) == hist
    assert sum(p["kind"] == "scatter" for p in page.plots) == len(tr.scores)
    # highlighted words are exactly the saved spans, for both models, in order
    shown = page.tokens()
    saved_json = json.loads((out / "translation.json").read_text())["examples"]
    for model, key in (("A", "tokens_a"), ("B", "tokens_b")):
        want = [(e["text"][s:t], round(v, 4)) for e in saved_json for s, t, v in e[key]["spans"]]
        assert [(w, round(v, 4)) for w, v in shown[model]] == want
    assert_not_executed(browser)
    assert_shown_as_text(browser, "window.__xss=1")


def test_report_command_re_renders_and_refuses_what_it_cannot_draw(saved, tmp_path, capsys):
    from interlingua.cli import main

    _, out = saved
    (out / REPORT).unlink(missing_ok=True)
    assert main(["report", str(out)]) == 0 and (out / REPORT).is_file()
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no saved results" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_serve_binds_to_loopback_only(saved):
    import threading
    import urllib.request

    from interlingua.report.serve import server

    _, out = saved
    render_saved(out)
    httpd = server(out, port=0)
    try:
        assert httpd.server_address[0] == "127.0.0.1"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{httpd.server_address[1]}/report.html", timeout=10) as r:
            assert r.read().startswith(b"<!doctype html>")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_demo_pages_from_saved_results(saved, tmp_path, browser):
    """The demo's results.json re-renders into report.md, report.html and each direction's page."""
    from interlingua import _io
    from interlingua.demo import DemoResult, DemoRow, DemoSummary, targets
    from interlingua.report import demo

    tr, _ = saved
    row = DemoRow(result=tr.result, kind="lexical", seconds=1.0)
    result = DemoResult(models=["tiny-llama", "tiny-gemma3"], dtype="float32", concepts=["yes_no"],
                        shared_text={"corpus_docs": 12, "generated_per_concept_and_model": 0, "label_free": True},
                        max_pairs_per_split=0, summary=DemoSummary(targets=targets([tr.result]), seconds=2.0),
                        translations=[row])
    _io.write_json(tmp_path / "results.json", result.to_json())
    back = DemoResult.from_json(json.loads((tmp_path / "results.json").read_text()))
    # compared as JSON text: null runs may hold NaN (fidelity undefined in a draw), and NaN != NaN
    assert json.dumps(back.to_json()) == json.dumps(result.to_json())
    assert back.translations[0].result.metrics == tr.metrics
    path = render_saved(tmp_path)
    assert "| yes_no |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / row.directory / REPORT).is_file()
    check_report(browser, path, "demo", kinds=("bars", "histogram"))
    assert "yes_no" in demo.text(result) and "target median fidelity test" in demo.text(result)


def test_a_new_control_and_method_reach_every_table_without_touching_the_renderers(llama, gemma, saved,
                                                                                     monkeypatch):
    """A control registered the usual way, and a method added to the results, appear in the text and the page."""
    from dataclasses import replace as dc_replace

    from interlingua.translate import controls
    from interlingua.translate.results import MethodResult

    monkeypatch.setitem(controls.CONTROLS, "planted_check", ("positive", lambda ctx: {
        "statistic": "fidelity_test", "value": 0.123, "must": "be drawn everywhere", "passed": True}))
    tr, _ = saved
    ca = tr.source
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    new = translate_concept(ca, llama, gemma, ds, layers_b=(3,), corpus_docs=12, draws=20, n_boot=50,
                            controls=("planted_check",))
    result = new.result
    result.metrics.methods["planted_method"] = dc_replace(result.metrics.methods["procrustes_map"],
                                                          target_hook="resid_post.3")
    assert isinstance(result.metrics.methods["planted_method"], MethodResult)
    out = translation.text(result)
    assert "control planted_check" in out and "planted_method" in out
    page = translation.html(result).render()
    assert "planted_check" in page and "be drawn everywhere" in page and "planted_method" in page

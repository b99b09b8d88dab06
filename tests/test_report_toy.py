"""`toy reproduce`: the typed suite run, its text and Markdown tables, and report.html with the checks and
the classic figures (checked in a real browser, tests/browser.py), re-rendered from saved files alone."""

from __future__ import annotations

import json

import pytest

from browser import check_report
from interlingua.report import REPORT, render_saved
from interlingua.report import toy as toy_report
from interlingua.toy.cli import add_toy_parser
from interlingua.toy.suite import CHECKS, CheckResult, ToyReproduction

RAN = ["polytope_dimensionalities", "s_curve_plateaus"]
CHECK_KEYS = ["name", "passed", "measured", "expected", "seconds", "tier", "paper"]


def _main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="interlingua")
    add_toy_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy") / "figs"
    _main(["toy", "reproduce", "--only", *RAN, "--out", str(directory)])
    return directory


def test_saved_results_round_trip(out):
    saved = json.loads((out / "toy_reproduce.json").read_text())
    assert list(saved) == ["seeds", "checks", "figures"]
    assert [c["name"] for c in saved["checks"]] == RAN
    for c in saved["checks"]:
        assert list(c) == CHECK_KEYS and c["passed"] and c["paper"] == CHECKS[c["name"]].paper
    assert [f["file"] for f in saved["figures"]] == ["s_curves.png"]
    assert (out / "s_curves.png").stat().st_size > 10_000 and (out / "s_curves.svg").read_text().startswith("<svg")
    run = ToyReproduction.from_json(saved)
    assert run.to_json() == saved and isinstance(run.checks[0], CheckResult) and not run.failed
    # the per-check record --json prints is what it always was
    assert set(run.checks[0].line()) == {"name", "passed", "measured", "expected", "seconds"}


def test_text_and_markdown(out):
    run = toy_report.load(out)
    text = toy_report.text(run)
    assert text.splitlines()[0].startswith("PASS  polytope_dimensionalities") and text.endswith("2/2 checks passed")
    md = toy_report.markdown(run)
    assert md.startswith("| check | tier | paper |") and md.count("| pass |") == 2


def test_report_in_a_browser(out, browser):
    page = check_report(browser, out / REPORT, "toy_reproduce", kinds=("bars", "lines"))
    assert sum(p["kind"] == "lines" for p in page.plots) == 1
    shown = browser.execute_script("return document.body.innerText")
    assert all(name in shown for name in RAN) and "2/2 checks passed" in shown


def test_report_re_renders_from_saved_files(out):
    (out / REPORT).unlink()
    assert render_saved(out) == out / REPORT
    assert (out / REPORT).read_text().count("<figure class=plot") == 2

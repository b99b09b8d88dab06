"""The toy lab's paper suite rendered for people: per-check lines, a Markdown table, the HTML report.

All read a :class:`~interlingua.toy.suite.ToyReproduction`. The report holds the checks table
(tier, paper, pass/fail, expected, measured) and the classic figures, embedded as the inline SVG
saved beside the PNG files when the suite ran (``toy reproduce --figures DIR``), so ``interlingua
report DIR`` redraws the page from saved files alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from interlingua import _io
from interlingua.report import plots, saved_as
from interlingua.report.html import Page, esc
from interlingua.toy.suite import CheckResult, SuiteFigure, ToyReproduction

RESULTS_FILE = "toy_reproduce.json"


def check_text(r: CheckResult) -> str:
    """The lines ``toy reproduce`` prints as each check finishes."""
    return (f"{'PASS' if r.passed else 'FAIL'}  {r.name:<34}{r.seconds:>7.1f} s  [{r.tier}]  {r.paper or ''}\n"
            f"      expected: {r.expected}\n"
            f"      measured: {json.dumps(r.measured)}")


def summary_text(run: ToyReproduction) -> str:
    failed = run.failed
    return (f"{len(run.checks) - len(failed)}/{len(run.checks)} checks passed"
            + (f"; failed: {', '.join(failed)}" if failed else ""))


def text(run: ToyReproduction) -> str:
    """Every check's lines and the summary line."""
    return "\n".join([check_text(c) for c in run.checks] + [summary_text(run)])


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(run: ToyReproduction) -> str:
    """A Markdown table of the checks (for a README or a CI summary)."""
    lines = ["| check | tier | paper | result | seconds | expected | measured |",
             "|---|---|---|---|---:|---|---|"]
    for c in run.checks:
        lines.append(f"| {_cell(c.name)} | {c.tier} | {_cell(c.paper or '')} | {'pass' if c.passed else '**FAIL**'} | "
                     f"{c.seconds:.1f} | {_cell(c.expected)} | `{_cell(json.dumps(c.measured))}` |")
    lines.append("")
    lines.append(summary_text(run))
    return "\n".join(lines) + "\n"


def _measured(measured: dict) -> str:
    """``measured`` as a small definition list (values as compact JSON), all escaped."""
    items = "".join(f"<div><b>{esc(k)}</b>: {esc(json.dumps(v))}</div>" for k, v in (measured or {}).items())
    return f"<div class=muted>{items}</div>"


def html(run: ToyReproduction, directory: str | Path | None = None) -> Page:
    """The report page; figures are read from their SVG files in ``directory`` (those missing are left out)."""
    page = Page("Toy lab: paper reproduction suite",
                f"{summary_text(run)}; {run.seeds} seed(s) per setting where minima vary (the lowest-loss one is "
                "judged)")
    page.heading("Checks")
    rows = [[c.name, c.tier, c.paper or "", c.expected, _measured(c.measured), page.verdict(c.passed), c.seconds]
            for c in run.checks]
    page.table(["check", "tier", "paper", "expected", "measured", "result", "seconds"], rows, left=5,
               html_columns=(4, 5))
    if run.checks:
        seconds = [c.seconds for c in run.checks]
        log = min(seconds) > 0 and max(seconds) > 10 * min(seconds)
        page.figure("bars", plots.bars([c.name for c in run.checks], seconds, ylabel="seconds", log=log),
                    "Time per check" + (" (log scale)." if log else ".") + " Runs shared between checks are "
                    "memoised, so a check after one that trained the same models can take almost nothing.")
    figures = [(f, Path(directory) / f.svg) for f in run.figures if directory is not None and f.svg]
    figures = [(f, p) for f, p in figures if p.is_file()]
    if figures:
        page.heading("Figures")
        for f, path in figures:
            page.figure(f.kind, path.read_text(encoding="utf-8"), f.caption or f.file)
    elif run.figures:
        page.paragraph("The figures' SVG files are not beside the results; the PNG files: "
                       + ", ".join(f.file for f in run.figures), muted=True)
    return page


def save(run: ToyReproduction, figures, directory: str | Path) -> Path:
    """Write each drawn figure (``toy.figures.ToyFigure``) as PNG and SVG, then ``toy_reproduce.json``,
    into ``directory``; records the figures in ``run``. Returns the JSON's path."""
    directory = Path(directory)
    run.figures = []
    for f in figures:
        _io.save_figure(f.fig, directory / f.file, dpi=110)
        svg = Path(f.file).with_suffix(".svg").name
        _io.write_text(directory / svg, plots.to_svg(f.fig))
        run.figures.append(SuiteFigure(file=f.file, svg=svg, kind=f.kind, caption=f.caption))
    return run.write(directory / RESULTS_FILE)


def load(directory: str | Path) -> ToyReproduction:
    return ToyReproduction.read(Path(directory) / RESULTS_FILE, "run `interlingua toy reproduce --figures DIR` again.")


@saved_as(RESULTS_FILE)
def _saved(directory: Path) -> Page:
    return html(load(directory), directory)

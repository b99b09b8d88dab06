"""One self-contained HTML page per result: escaped text, tables, inline SVG figures, highlighted words.

Everything that comes from data (texts of a corpus, concept names, hooks) goes through
:func:`html.escape`, so markup in a corpus is shown as text and never runs. The page loads
nothing: styles are inline and figures are inline SVG (:mod:`interlingua.report.plots`).

The page's structure is a contract the browser tests check: each plot is
``<figure class="plot" data-kind=KIND>`` holding one ``<svg>``; highlighted text is
``<span class="tok" data-score=S>word</span>`` inside ``<div class="tokens" data-model=M>``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from interlingua import _io

KINDS = ("heatmap", "histogram", "scatter", "lines", "bars")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:76em;margin:1.5em auto;
padding:0 1em}h1{font-size:1.45em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:1.1em 0 .3em}p{margin:.4em 0}.muted{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}th,td{padding:.22em .6em;border-bottom:1px solid #eee;
text-align:right;vertical-align:top}th{background:#f6f6f6}td.l,th.l{text-align:left}
.ok{color:#1e7b34;font-weight:600}.fail{color:#b03a2e;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}figure.plot{margin:0;max-width:100%}
figure.plot svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555;max-width:34em}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:.4em 0 1em}
.tokens{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;white-space:pre-wrap;
word-break:break-word;border:1px solid #eee;padding:.4em;border-radius:4px}
.tokens .who{display:block;font-family:system-ui,sans-serif;color:#555;margin-bottom:.2em}
.tok{border-radius:2px}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(22em,1fr));gap:1em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em}
.snip{font-family:ui-monospace,monospace;font-size:.82em;white-space:pre-wrap;margin:.15em 0}
mark{background:#ffd27f;padding:0 .1em;border-radius:2px}
"""


def esc(text: object) -> str:
    """``text`` as HTML text (quotes included, for attributes too)."""
    return html.escape("" if text is None else str(text), quote=True)


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: floats to ``digits`` places, intervals as ``[lo, hi]``, None as ``–``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{fmt(float(value[0]), digits)}, {fmt(float(value[1]), digits)}]"
    return str(value)


def colour(score: float, scale: float) -> str:
    """Diverging background: red for positive scores, blue for negative, opacity ∝ |score| / scale."""
    a = min(1.0, abs(score) / scale) * 0.75 if scale > 0 else 0.0
    return f"rgba(214,39,40,{a:.2f})" if score > 0 else f"rgba(31,119,180,{a:.2f})"


class Page:
    """An HTML page built section by section; :meth:`write` saves it atomically."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{esc(title)}</h1>"]
        if subtitle:
            self.parts.append(f"<p class='muted'>{esc(subtitle)}</p>")
        self._open_figs = False

    # ---- text ---------------------------------------------------------------------------------

    def heading(self, text: str, level: int = 2) -> Page:
        self._close_figs()
        self.parts.append(f"<h{level}>{esc(text)}</h{level}>")
        return self

    def paragraph(self, text: str, *, muted: bool = False) -> Page:
        self._close_figs()
        self.parts.append(f"<p{' class=muted' if muted else ''}>{esc(text)}</p>")
        return self

    def verdict(self, passed: bool | None) -> str:
        """HTML for a pass/fail mark (for use inside :meth:`table` cells via ``Cell``)."""
        return "–" if passed is None else ("<span class=ok>pass</span>" if passed else "<span class=fail>FAIL</span>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1,
              html_columns: Sequence[int] = (), text_columns: Sequence[int] = ()) -> Page:
        """A table; the first ``left`` columns and the ``text_columns`` are left-aligned. Cells are escaped,
        except the columns in ``html_columns``, which must hold markup made by this module (e.g. :meth:`verdict`)."""
        self._close_figs()
        lefts = set(range(left)) | set(text_columns)
        head = "".join(f"<th class={'l' if i in lefts else 'r'}>{esc(h)}</th>" for i, h in enumerate(headers))
        body = []
        for row in rows:
            cells = []
            for i, v in enumerate(row):
                content = v if i in html_columns else esc(fmt(v))
                cells.append(f"<td class={'l' if i in lefts else 'r'}>{content}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return self

    # ---- figures ------------------------------------------------------------------------------

    def figure(self, kind: str, svg: str, caption: str = "") -> Page:
        """One plot (``kind`` one of :data:`KINDS`); consecutive figures share a row."""
        if kind not in KINDS:
            raise ValueError(f"unknown plot kind {kind!r}; one of {KINDS}")
        if not svg.lstrip().startswith("<svg"):
            raise ValueError("a figure holds one inline <svg> element")
        if not self._open_figs:
            self.parts.append("<div class=figs>")
            self._open_figs = True
        cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure class=plot data-kind={kind}>{svg}{cap}</figure>")
        return self

    def _close_figs(self) -> None:
        if self._open_figs:
            self.parts.append("</div>")
            self._open_figs = False

    # ---- highlighted text ---------------------------------------------------------------------

    @staticmethod
    def tokens_html(text: str, spans: Sequence[Sequence[float]], who: str, model: str) -> str:
        """``text`` with every scored span ``[start, end, score]`` highlighted (the rest plain)."""
        scale = max((abs(float(s)) for _, _, s in spans), default=0.0)
        out, at = [], 0
        for start, end, score in sorted(spans, key=lambda s: (s[0], s[1])):
            start, end = int(start), int(end)
            if start < at:
                continue
            out.append(esc(text[at:start]))
            out.append(f"<span class=tok data-score='{float(score):.4f}' title='{esc(f'{float(score):.3f}')}' "
                       f"style='background:{colour(float(score), scale)}'>{esc(text[start:end])}</span>")
            at = end
        out.append(esc(text[at:]))
        return (f"<div class=tokens data-model='{esc(model)}'><span class=who>{esc(who)}</span>"
                + "".join(out) + "</div>")

    def side_by_side(self, left: str, right: str) -> Page:
        """Two blocks of markup made by :meth:`tokens_html` next to each other."""
        self._close_figs()
        self.parts.append(f"<div class=pair>{left}{right}</div>")
        return self

    def markup(self, fragment: str) -> Page:
        """A fragment built by this module's helpers (never raw data)."""
        self._close_figs()
        self.parts.append(fragment)
        return self

    # ---- output -------------------------------------------------------------------------------

    def render(self) -> str:
        self._close_figs()
        return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
                "<meta name=viewport content='width=device-width,initial-scale=1'>"
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
                + "\n".join(self.parts) + "</body></html>\n")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        _io.write_text(path, self.render())
        return path

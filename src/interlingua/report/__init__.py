"""The pipeline's last stage: typed results rendered as text, Markdown and one self-contained HTML page.

Every command that produces results saves them as JSON and writes ``report.html`` beside it
through :func:`write_report`. ``interlingua report DIR`` re-renders from the saved JSON alone
(:func:`render_saved`): each kind of result registers, with :func:`saved_as`, the file that
identifies it in a directory and the function that loads it and builds its page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from interlingua.errors import InterlinguaError
from interlingua.report.html import Page

REPORT = "report.html"
Renderer = Callable[[Path], Page]
SAVED: dict[str, Renderer] = {}


def saved_as(filename: str) -> Callable[[Renderer], Renderer]:
    """Register a renderer for directories holding ``filename`` (the first registered match wins)."""
    def register(fn: Renderer) -> Renderer:
        SAVED[filename] = fn
        return fn
    return register


def write_report(page: Page, directory: str | Path) -> Path:
    """Write ``page`` as ``directory/report.html`` (atomically) and return its path."""
    return page.write(Path(directory) / REPORT)


def render_saved(directory: str | Path) -> Path:
    """Re-render ``directory``'s report from its saved results (no model is loaded, nothing recomputed)."""
    from interlingua.report import renderers  # noqa: F401  (registers every kind)

    directory = Path(directory)
    if not directory.is_dir():
        raise InterlinguaError(f"{directory} is not a directory; give the --out directory of a command that saved "
                               "results (translate, demo, audit, steer, sae eval, sae match, toy reproduce).")
    for filename, render in SAVED.items():
        if (directory / filename).is_file():
            return write_report(render(directory), directory)
    raise InterlinguaError(f"{directory} holds no saved results this version can draw (looked for "
                           f"{', '.join(SAVED)}).")


__all__ = ["REPORT", "Page", "render_saved", "saved_as", "write_report"]

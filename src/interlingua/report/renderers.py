"""Every kind of saved result :func:`interlingua.report.render_saved` can draw, registered by file name."""

from __future__ import annotations

from pathlib import Path

from interlingua.report import saved_as
from interlingua.report.html import Page


@saved_as("translation.json")
def _translation(directory: Path) -> Page:
    from interlingua.report import translation
    from interlingua.translate import Translation

    return translation.html(Translation.load(directory))

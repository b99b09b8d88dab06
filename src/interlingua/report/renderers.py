"""Every kind of saved result :func:`interlingua.report.render_saved` can draw, registered by file name."""

from __future__ import annotations

from pathlib import Path

from interlingua.report import saved_as
from interlingua.report.html import Page


@saved_as("results.json")
def _demo(directory: Path) -> Page:
    from interlingua import _io
    from interlingua.demo import DemoResult
    from interlingua.report import demo

    result = DemoResult.from_json(_io.read_json(directory / "results.json"))
    demo.write_all(result, directory)
    return demo.html(result)


@saved_as("audit.json")
def _audit(directory: Path) -> Page:
    from interlingua.audit import Audit
    from interlingua.report import audit

    return audit.html(Audit.load(directory))


@saved_as("translation.json")
def _translation(directory: Path) -> Page:
    from interlingua import _io
    from interlingua.report import translation
    from interlingua.translate.results import TranslationResult

    return translation.html(TranslationResult.from_file_json(_io.read_json(_io.recover_dir(directory) /
                                                                         "translation.json")))
from interlingua.report import sae, toy  # noqa: E402,F401  (sae eval, sae match, toy reproduce)
from interlingua.report import steer  # noqa: E402,F401  (steer.json, causal.json)
from interlingua.report import diff  # noqa: E402,F401  (diff.json)

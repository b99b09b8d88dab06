"""The ``interlingua`` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from interlingua.argtypes import non_negative_int, positive_float, positive_int, seed, whole
from interlingua.errors import InterlinguaError
from interlingua.models.dtype import DTYPE_CHOICES, DTYPE_HELP


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def cmd_models(args) -> None:
    from interlingua.models.dtype import auto_dtype
    from interlingua.models.loading import cache_dir
    from interlingua.models.registry import BUNDLED

    rows = []
    for m in BUNDLED.values():
        cached = any((cache_dir() / "models").glob(f"{m.name}-v*/config.json"))
        rows.append({"name": m.name, "architecture": m.architecture, "layers": m.n_layers, "d_model": m.d_model,
                     "vocab": m.vocab_size, "installed": m.installed, "cached": cached, "licence": m.licence,
                     "description": m.description, "install": m.install})
    auto = auto_dtype()
    if args.json:
        return _print_json({"models": rows, "auto_dtype": {"dtype": auto.name, "reason": auto.reason}})
    from interlingua.report.catalog import models_text

    print(models_text(rows, cache_dir(), auto.reason))


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

    concepts = tuple(c for c in args.concepts.split(",") if c) if args.concepts else None
    if concepts:
        from interlingua.concepts import load_concept

        for c in concepts:  # an unknown name fails here, before any model loads
            load_concept(c)
    from interlingua.report import demo

    out = Path(args.out)
    result = run_demo(out=out, dtype=args.dtype, corpus_docs=args.corpus_docs, generate=args.generate,
                      max_pairs=args.max_pairs, progress=not args.json, **({"concepts": concepts} if concepts else {}))
    page = demo.write_all(result, out)
    if args.json:
        return _print_json(result.to_json())
    print(demo.text(result))
    print(f"\n{result.summary.seconds:.0f} s. Wrote {out / 'results.json'}, {out / 'report.md'} and {page} (each "
          f"direction's own report.html beside its translation).")


def cmd_concept_list(args) -> None:
    from interlingua.concepts import list_concepts
    from interlingua.concepts.baselines import split_baselines

    rows = [{"name": c.name, "kind": c.kind, "train": c.size("train"), "test": c.size("test"),
             "ood": c.size("ood"), **split_baselines(c), "description": c.description} for c in list_concepts()]
    if args.json:
        return _print_json(rows)
    from interlingua.report.catalog import concepts_text

    print(concepts_text(rows))


def _saving_to(out: str | None):
    """Hold the lock of ``--out`` (a directory saved as one unit) for a whole command.

    A second command saving to the same place is refused at once, before its work, instead of
    finding out (or mixing the two) when it saves.
    """
    import contextlib

    from interlingua import _io

    return _io.writing(out, beside=True) if out else contextlib.nullcontext()


def cmd_concept_find(args) -> None:
    with _saving_to(args.out):
        _concept_find(args)


def _concept_find(args) -> None:
    from interlingua import _io
    from interlingua.concepts import find_concept, load_concept
    from interlingua.concepts.concept import FILES, WHAT
    from interlingua.models import load_model
    from interlingua.report import concept as report_concept

    if args.out:  # refused before any work: an existing concept needs --overwrite, other files are never replaced
        _io.check_replaceable(args.out, FILES, WHAT, overwrite=args.overwrite)
    dataset = load_concept(args.concept)
    model = load_model(args.model, dtype=args.dtype)
    layers = None
    hook = args.hook
    if args.layer not in (None, "auto"):
        try:
            hook = f"resid_post.{int(args.layer)}"
        except ValueError:
            raise InterlinguaError(f"--layer takes a layer number or 'auto', not {args.layer!r}.") from None
    concept = find_concept(model, dataset, hook=hook, layers=layers, method=args.method, read=args.read,
                           seed=args.seed, pca_center=args.pca_center, progress=not args.json)
    if args.out:
        concept.save(args.out, overwrite=args.overwrite)
    if args.json:
        return _print_json({**concept.metrics.to_json(), "concept": concept.name, "model": model.name,
                            "saved_to": args.out, "sweep": concept.provenance["sweep"]})
    print(report_concept.text(concept))
    if args.out:
        print(f"  saved to {args.out}")


def cmd_report(args) -> None:
    from interlingua.report import render_saved
    from interlingua.report.serve import serve

    path = render_saved(args.dir)
    print(f"report: {path}")
    if args.serve:
        serve(path.parent, port=args.port)


def cmd_audit(args) -> None:
    from interlingua.audit import AuditConfig

    config = AuditConfig(null_texts=args.null_texts, calibration_texts=args.calibration_texts,
                         corpus_candidates=args.corpus_candidates, generate=args.generate,
                         search_rounds=args.search_rounds, seed=args.seed, progress=not args.json)
    with _saving_to(args.out):
        _audit(args, config)


def _audit(args, config) -> None:
    from interlingua.audit import audit
    from interlingua.models import load_model
    from interlingua.report import audit as report_audit
    from interlingua.report import write_report
    from interlingua.textio import read_documents
    from interlingua.translate import Translation

    texts = read_documents(args.texts) if args.texts else []
    sae = None
    if args.sae:
        from interlingua.sae import load_sae

        sae = load_sae(args.sae)
    tr = Translation.load(args.translation)
    model_a = load_model(tr.source.model_name, dtype=args.dtype)
    model_b = load_model(tr.target.model_name, dtype=args.dtype)
    result = audit(tr, model_a, model_b, config, texts=texts, sae_a=sae)
    page = None
    if args.out:
        result.save(args.out)
        page = write_report(report_audit.html(result), args.out)
    if args.json:
        return _print_json({**result.to_json(), "saved_to": args.out})
    print(report_audit.text(result))
    if args.out:
        print(f"  saved to {args.out}; report: {page}")


def _translate_config(args):
    """The translation's settings from the command line, every one checked before any model loads."""
    from interlingua.translate import TranslateConfig
    from interlingua.translate.controls import check_names

    controls = ("all",) if args.controls == "all" else tuple(c for c in args.controls.split(",") if c)
    check_names(controls)
    if not (args.corpus_docs or args.generate or args.concept_texts):
        raise InterlinguaError("the shared text would be empty: give --corpus-docs N (N > 0), --generate N or "
                               "--concept-texts.")
    return TranslateConfig(
        layers_b=_layers(args.layers_b), corpus_docs=args.corpus_docs, concept_texts=args.concept_texts,
        pos_weight=args.pos_weight, controls=controls, draws=args.draws, mlp=args.mlp, seed=args.seed,
        progress=not args.json)


def cmd_translate(args) -> None:
    config = _translate_config(args)
    with _saving_to(args.out):
        _translate(args, config)


def _translate(args, config) -> None:
    from interlingua import _io
    from interlingua.concepts import Concept, find_concept, load_concept
    from interlingua.models import load_model
    from interlingua.report import translation, write_report
    from interlingua.sae import load_sae
    from interlingua.translate import Translation, translate_concept

    if args.out:  # a directory with other files is refused before any work, not after it
        _io.check_replaceable(args.out, Translation.FILES, Translation.WHAT, overwrite=True)
    dataset = load_concept(args.concept)
    sae = load_sae(args.target_sae) if args.target_sae else None
    model_a = load_model(args.source, dtype=args.dtype)
    model_b = load_model(args.target, dtype=args.dtype)
    if args.source_concept:
        concept_a = Concept.load(args.source_concept, model=model_a)
    else:
        concept_a = find_concept(model_a, dataset, layers=range(1, model_a.n_layers, 3), n_boot=200, n_null=8,
                                 progress=not args.json)
    generated = []
    if args.generate:
        from interlingua.steer.generative import concept_texts

        generated = concept_texts(model_a, concept_a, args.generate, seed=args.seed, description=dataset.description,
                                  progress=not args.json)
    tr = translate_concept(concept_a, model_a, model_b, dataset, config, generated=generated, target_sae=sae)
    report_path = None
    if args.out:
        tr.save(args.out)
        report_path = write_report(translation.html(tr.result), args.out)
    if args.json:
        return _print_json({**tr.to_json(), "saved_to": args.out})
    print(translation.text(tr.result))
    if args.out:
        print(f"  saved to {args.out}; report: {report_path}")


def _layers(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        layers = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InterlinguaError(f"--layers-b takes comma-separated layer numbers, not {text!r}.") from None
    if not layers or min(layers) < 0:
        raise InterlinguaError(f"--layers-b takes layer numbers 0, 1, 2, …, not {text!r}.")
    return layers


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
    s.add_argument("--max-docs", type=positive_int, help="use only the first N documents")
    s.add_argument("--out", required=True, help="output directory (resumed if it holds the same job)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--skip-first", type=non_negative_int, default=0,
                   help="leave out the first N positions of every document (BOS / attention sinks)")
    s.add_argument("--max-tokens", type=positive_int, help="truncate documents to N tokens (default: error if a "
                                                           "document exceeds the model's context)")
    s.add_argument("--batch-tokens", type=positive_int, default=4096, help="padded tokens per forward pass")
    s.add_argument("--shard-tokens", type=positive_int, default=65536, help="tokens per shard file")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an extraction in --out by this one (a directory holding other files is refused)")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    s.set_defaults(fn=cmd_extract)

    s = sub.add_parser("corpus", help="describe the bundled corpus and its licence")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_corpus)

    s = sub.add_parser("sample", help="generate text from a model (seeded)")
    s.add_argument("--model", required=True)
    s.add_argument("-n", type=positive_int, default=8, help="number of texts")
    s.add_argument("--max-new-tokens", type=positive_int, default=64)
    s.add_argument("--temperature", type=positive_float, default=1.0, help="sampling temperature (above 0)")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--out", help="write the texts as .jsonl here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_sample)

    concept = sub.add_parser("concept", help="concept datasets and finding concepts in a model")
    csub = concept.add_subparsers(dest="concept_command", required=True, metavar="SUBCOMMAND")
    s = csub.add_parser("list", help="the built-in concepts with sizes, a bag-of-words baseline per split and a "
                                     "description")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_concept_list)
    s = csub.add_parser(
        "find", help="find a concept in a model: layer sweep, readout, AUROC with nulls",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find a concept in a model. The layer is chosen on a validation part of the train split "
                    "(never on test); AUROC is reported on test and OOD with bootstrap intervals, next to "
                    "the same pipeline with shuffled labels and random directions.\n\n"
                    "Concept file format (JSON):\n"
                    '  {"name": "...", "description": "...",\n'
                    '   "train": [{"positive": "text", "negative": "text"}, ...]   # contrastive pairs, or\n'
                    '   "test":  [{"text": "text", "label": 0 or 1}, ...]          # labelled texts\n'
                    '   "ood":   [...]}                                            # optional\n'
                    'Labelled texts may add "words": [["cats", 1], ...] for word-level labels (--read words).')
    s.add_argument("--model", required=True, help="bundled name, model directory, .gguf file or HF id")
    s.add_argument("--concept", required=True, help="built-in concept name or path of a concept file")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--hook", help="fix the hook point (e.g. resid_post.12, mlp_out.3)")
    where.add_argument("--layer", default="auto", help="resid_post layer number, or 'auto' (default): sweep all")
    s.add_argument("--method", default="logistic", choices=["diff_of_means", "logistic", "pca"])
    s.add_argument("--read", default="last", choices=["last", "words"],
                   help="read at the last token of each text, or at labelled words")
    s.add_argument("--pca-center", action="store_true", help="centre the paired differences before PCA")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--out", help="save the concept here (concept.safetensors + concept.json)")
    s.add_argument("--overwrite", action="store_true", help="replace a concept already saved in --out")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(fn=cmd_concept_find)

    s = sub.add_parser(
        "translate", help="carry a concept from model A into model B, with evidence and controls",
        description="Find the concept in A (or load it with --source-concept) and read A's concept score on aligned "
                    "words of shared text that carries no labels by default: bundled-corpus documents and, with "
                    "--generate, text A writes itself (unsteered, steered toward and away from the concept, rewrites). "
                    "A ridge readout on B is fitted to reproduce that score (B's layer and the ridge strength chosen "
                    "by cross-validation over whole documents) and judged on the concept's test and OOD texts, which "
                    "it never saw: fidelity to A's decisions first, then the labels and recovery against B's own "
                    "probe (same layers), each with a paired bootstrap interval and the bag-of-words baseline. Every "
                    "control is a test: must-fail controls give a p-value against 200 null draws; floors must be "
                    "beaten by more than a bootstrap interval.")
    s.add_argument("--concept", required=True, help="built-in concept name or concept file")
    s.add_argument("--source", required=True, help="model A")
    s.add_argument("--target", required=True, help="model B")
    s.add_argument("--source-concept", help="a saved concept of A (directory) instead of finding it")
    s.add_argument("--corpus-docs", type=non_negative_int, default=60,
                   help="bundled-corpus documents in the shared text")
    s.add_argument("--generate", type=non_negative_int, default=0,
                   help="also let A write this many texts (its generative mode for the concept) for the shared text")
    s.add_argument("--concept-texts", action="store_true",
                   help="also put the concept's train texts in the shared text, scored by A out-of-fold (the "
                        "translation is then no longer label-free)")
    s.add_argument("--layers-b", help="comma-separated resid_post layers of B to choose among (default: every "
                                      "third and the last); B's own probe sweeps the same")
    s.add_argument("--pos-weight", type=positive_float, default=1.0,
                   help="weight of words A scores positive (cost of false negatives vs false positives)")
    s.add_argument("--draws", type=positive_int, default=200,
                   help="draws of every null distribution (200 supports p <= 0.01)")
    s.add_argument("--seed", type=seed, default=0, help="seed for folds, nulls and --generate")
    s.add_argument("--mlp", action="store_true",
                   help="also fit a small MLP readout, judged against the linear one on documents neither saw")
    s.add_argument("--target-sae", help="an SAE trained on model B (SAELens layout directory): its latents join "
                        "the unit search")
    s.add_argument("--controls", default="shuffled_pairing,label_shuffle,synthetic_target",
                   help="comma-separated controls, or 'all' (adds off_by_one, random_init_target, lexical_only_target)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--out", help="save source and translated concepts, translation.json and report.html here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_translate)

    s = sub.add_parser("audit", help="where a translated concept and its source disagree, and which of the source "
                                     "model's concepts explain it",
                       description="Rank inputs by how far B's translated score is from what A's score predicts "
                                   "(a calibration fitted on held-out sentences, p-values against held-out null "
                                   "sentences), and test every built-in concept of A (and an SAE of A's latents) "
                                   "as an explanation, corrected for all tried.")
    s.add_argument("--translation", required=True, help="a saved translation (translate --out DIR)")
    s.add_argument("--texts", help="your own candidate texts: a .txt (one per line) or .jsonl file")
    s.add_argument("--generate", type=non_negative_int, default=0,
                   help="texts each model writes in the concept's generative mode (plain, steered, rewrites)")
    s.add_argument("--search-rounds", type=non_negative_int, default=0,
                   help="rounds of search: resample the endings of the top disagreements from both models")
    s.add_argument("--corpus-candidates", type=non_negative_int, default=800, help="corpus sentences ranked")
    s.add_argument("--calibration-texts", type=positive_int, default=200,
                   help="held-out sentences the calibration is fitted on")
    s.add_argument("--null-texts", type=positive_int, default=600, help="held-out sentences of the null")
    s.add_argument("--sae", help="an SAE trained on the source model: its latents join the explanations")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--out", help="save audit.json and report.html here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_audit)

    s = sub.add_parser("report", help="re-draw DIR/report.html from the results saved there (nothing recomputed)",
                       description="Re-render the HTML report of a saved run (translate, demo, audit, steer, sae eval, "
                                   "sae match, toy reproduce) from its JSON alone; --serve shows it on 127.0.0.1.")
    s.add_argument("dir", help="the --out directory of a command that saved results")
    s.add_argument("--serve", action="store_true", help="serve DIR on http://127.0.0.1:PORT until interrupted")
    s.add_argument("--port", type=non_negative_int, default=8000, help="port for --serve (0: any free port)")
    s.set_defaults(fn=cmd_report)

    from interlingua.toy.cli import add_toy_parser

    add_toy_parser(sub)

    from interlingua.organism_cli import add_organism_parser

    add_organism_parser(sub)

    from interlingua.diff_cli import add_diff_parser

    add_diff_parser(sub)

    from interlingua.sae.cli import add_sae_parser

    add_sae_parser(sub)

    from interlingua.steer.cli import add_steer_parser

    add_steer_parser(sub)

    s = sub.add_parser("demo", help="the main job: translate concepts between the two bundled models, both ways",
                       description="Find a lexical, a contextual and an order-sensitive built-in concept in both "
                                   "bundled models, translate each into the other model, and report native vs "
                                   "transferred AUROC, recovery and controls (results.json + report.md).")
    s.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    s.add_argument("--concepts", help="comma-separated built-in concepts (default: plural_noun,sentiment,negation_scope)")
    s.add_argument("--corpus-docs", type=whole(5), default=60, help="bundled-corpus documents in the shared text")
    s.add_argument("--generate", type=non_negative_int, default=0,
                   help="texts each model writes per concept (its generative mode) for the shared text")
    s.add_argument("--max-pairs", type=non_negative_int, default=100,
                   help="first pairs kept of every split of each concept (0: all; default 100 keeps the demo within "
                        "10 minutes on 2 cores)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
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

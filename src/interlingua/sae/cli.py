"""The ``interlingua sae`` command group (train, eval, match). Wire in with ``add_sae_parser(subparsers)``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interlingua.argtypes import finite_float, non_negative_float, non_negative_int, positive_int, seed
from interlingua.errors import InterlinguaError
from interlingua.models.dtype import DTYPE_CHOICES, DTYPE_HELP


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def _texts(args, default_split: str) -> list[str]:
    from interlingua.data.corpus import load_corpus
    from interlingua.textio import read_documents

    docs = read_documents(args.text_file) if args.text_file else load_corpus(args.corpus or default_split)
    return docs[: args.max_docs] if args.max_docs else docs


def _model(name: str, dtype: str, random_init: int | None = None):
    from interlingua.models import load_model
    from interlingua.models.controls import random_init_copy

    model = load_model(name, dtype=dtype)
    return random_init_copy(model, seed=random_init) if random_init is not None else model


def _set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# train


def cmd_sae_train(args) -> None:
    from interlingua.sae.data import CacheSource, Exclusion, ModelSource
    from interlingua.sae.train import TrainConfig, Trainer

    _set_threads(args.threads)
    exclusion = Exclusion(skip_first=args.skip_first, outlier_factor=args.outlier_factor)
    provenance: dict = {}
    if args.cache:
        if args.model or args.random_init is not None:
            raise InterlinguaError("--cache trains on stored activations; leave out --model / --random-init.")
        source = CacheSource(args.cache, hooks=args.hook, exclusion=exclusion)
        provenance["model"] = source.cache.manifest["job"].get("model", "")
    else:
        if not args.model or not args.hook:
            raise InterlinguaError("name the model and at least one hook (--model … --hook resid_post.N), or "
                                   "train on a cache written by `interlingua extract` (--cache DIR).")
        model = _model(args.model, args.dtype, args.random_init)
        source = ModelSource(model, _texts(args, "train"), args.hook, exclusion=exclusion,
                             docs_per_chunk=args.docs_per_chunk, max_tokens=args.max_tokens)
        provenance.update(model=args.model, model_dtype=str(model.dtype).removeprefix("torch."), random_init=args.random_init,
                          texts=args.text_file or f"bundled corpus ({args.corpus or 'train'})")
    cfg = TrainConfig(architecture=args.architecture, d_sae=args.latents, expansion=args.expansion, k=args.k,
                      batch_size=args.batch_size, total_vectors=args.vectors, optimizer=args.optimizer, lr=args.lr,
                      sparsity_coefficient=args.sparsity_coefficient, aux_coefficient=args.aux_coefficient,
                      dead_after=args.dead_after, compute_dtype=args.compute_dtype, seed=args.seed,
                      checkpoint_every=args.checkpoint_every)
    trainer = Trainer(source, cfg, args.out, overwrite=args.overwrite, provenance=provenance)
    result = trainer.run(progress=not args.json)
    summary = {**result.summary, "out": str(Path(args.out).resolve()),
               "saes": {h: str((Path(args.out) / h).resolve()) for h in result.saes}}
    if args.json:
        return _print_json(summary)
    resumed = f" (resumed at step {summary['resumed_from_step']})" if summary["resumed_from_step"] else ""
    print(f"trained {len(result.saes)} SAE(s), {summary['steps']} steps × {cfg.batch_size} = {summary['vectors']:,} "
          f"vectors in {summary['seconds']:.0f} s ({summary['vectors_per_s']} vectors/s){resumed}")
    for hook, h in summary["hooks"].items():
        print(f"  {hook}: training FVU {h['train_fvu_ema']:.4f}, L0 {h['train_l0_ema']:.1f}, "
              f"dead {h['dead_fraction']:.1%} → {summary['saes'][hook]}")
    print("  evaluate on held-out text with: interlingua sae eval --sae " + next(iter(summary["saes"].values())))


# --------------------------------------------------------------------------------------------
# eval


def cmd_sae_eval(args) -> None:
    from interlingua import report
    from interlingua.report import sae as sae_report
    from interlingua.sae import load_sae
    from interlingua.sae.evaluate import SAEEval, evaluate

    _set_threads(args.threads)
    sae = load_sae(args.sae)
    if args.hook:
        sae.cfg.hook_name = args.hook
    name = args.model or sae.cfg.model_name or sae.cfg.provenance.get("model")
    if not name:
        raise InterlinguaError("the SAE does not record its model; pass --model.")
    texts = _texts(args, "test")
    seed = sae.cfg.provenance.get("random_init")
    model = _model(name, args.dtype, seed)
    kw = dict(max_tokens=args.max_tokens, downstream=not args.no_downstream, snippets=args.snippets,
              progress=not args.json)
    result = SAEEval(sae=str(args.sae), texts=len(texts), main=evaluate(sae, model, texts, **kw))
    if args.baseline:
        base = load_sae(args.baseline)
        base_seed = base.cfg.provenance.get("random_init")
        if base_seed is None:
            raise InterlinguaError(f"{args.baseline} was not trained on a random-init model (train it with "
                                   "`interlingua sae train --random-init 0 …`).")
        base_model = _model(base.cfg.model_name or name, args.dtype, base_seed)
        result.baseline = evaluate(base, base_model, texts, **kw)
        result.baseline_sae = str(args.baseline)
    title = f"{sae.cfg.model_name} {sae.cfg.hook_name} ({sae.architecture}, {sae.d_sae} latents)"
    if args.html and result.main.latents:
        result.html = str(Path(args.html).resolve())
        sae_report.eval_html(result, title).write(args.html)
    if args.out:
        sae_report.save_eval(result, args.out)
        report.write_report(sae_report.eval_html(result, title), args.out)
    if args.json:
        return _print_json(result.to_json())
    print(sae_report.eval_text(result))
    if args.out:
        print(f"  saved: {Path(args.out) / sae_report.EVAL_FILE}, report: {Path(args.out) / report.REPORT}")


# --------------------------------------------------------------------------------------------
# match


def cmd_sae_match(args) -> None:
    from interlingua import report
    from interlingua.report import sae as sae_report
    from interlingua.sae import load_sae
    from interlingua.sae.match import MatchSide, SAEMatch, match_latents
    from interlingua.translate.pairs import paired_words

    _set_threads(args.threads)
    sae_a, sae_b = load_sae(args.sae_a), load_sae(args.sae_b)
    name_a = args.model_a or sae_a.cfg.model_name
    name_b = args.model_b or sae_b.cfg.model_name
    if not name_a or not name_b:
        raise InterlinguaError("the SAEs do not record their models; pass --model-a and --model-b.")
    model_a, model_b = _model(name_a, args.dtype), _model(name_b, args.dtype)
    texts = _texts(args, "test")
    hook_a, hook_b = sae_a.cfg.hook_name, sae_b.cfg.hook_name
    pairs = paired_words(model_a, model_b, texts, [hook_a], [hook_b], progress=not args.json)
    x_a, x_b = pairs.a[hook_a], pairs.b[hook_b]
    kw = dict(min_fires=args.min_fires, max_latents=args.max_latents, n_null=args.n_null, groups=pairs.doc)
    cross = match_latents(sae_a, x_a, sae_b, x_b, **kw)
    result = SAEMatch(a=MatchSide(model=name_a, hook=hook_a, sae=str(args.sae_a)),
                      b=MatchSide(model=name_b, hook=hook_b, sae=str(args.sae_b)),
                      texts=len(texts), cross=cross.summary, top_pairs=cross.pairs(args.top))
    if args.sae_a2:
        sae_a2 = load_sae(args.sae_a2)
        if sae_a2.cfg.hook_name != hook_a:
            raise InterlinguaError(f"--sae-a2 is at {sae_a2.cfg.hook_name}, --sae-a at {hook_a}; the ceiling needs "
                                   "the same hook point.")
        ceiling = match_latents(sae_a, x_a, sae_a2, x_a, **kw)
        result.seed_ceiling = ceiling.summary
        c = ceiling.summary.fraction_above
        result.cross_over_ceiling = cross.summary.fraction_above / c if c > 0 else None
    if args.out:
        result.matched = cross.matched()
        saved = sae_report.save_match(result, args.out)
        report.write_report(sae_report.match_html(result), saved.parent)
    if args.json:
        return _print_json(result.printed())
    print(sae_report.match_text(result, min_fires=args.min_fires))
    if args.out:
        print(f"  saved: {saved}, report: {saved.parent / report.REPORT}")


# --------------------------------------------------------------------------------------------


def outlier_factor(text: str) -> float:
    """argparse type of --outlier-factor: 0 (keep every position) or a finite factor of at least 1.

    A factor below 1 would leave out most ordinary positions, not outliers.
    """
    value = non_negative_float(text)
    if 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be 0 (keep all) or at least 1, got {text}")
    return value


def _add_text_args(s, default_split: str) -> None:
    src = s.add_mutually_exclusive_group()
    src.add_argument("--text-file", help="UTF-8 text, one document per line, or .jsonl with a \"text\" field")
    src.add_argument("--corpus", choices=["all", "train", "test"],
                     help=f"bundled corpus split (default: {default_split})")
    s.add_argument("--max-docs", type=positive_int, help="use only the first N documents")


def _add_run_args(s) -> None:
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--threads", type=positive_int, help="torch CPU threads")
    s.add_argument("--json", action="store_true", help="print JSON")


def add_sae_parser(subparsers) -> None:
    """Add ``sae train``, ``sae eval`` and ``sae match`` to an argparse sub-parser collection."""
    sae = subparsers.add_parser("sae", help="sparse autoencoders: train fast, evaluate, match latents across models")
    ssub = sae.add_subparsers(dest="sae_command", required=True, metavar="SUBCOMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    s = ssub.add_parser(
        "train", formatter_class=fmt, help="train SAEs at one or more hook points",
        description="Train one SAE per hook point, streaming activations from the model (all hooks from one "
                    "forward pass) or reading an activation cache. BOS (first positions) and high-norm positions "
                    "are left out. Checkpoints go to OUT/checkpoint; running the same command again resumes "
                    "exactly. Finished SAEs are written to OUT/<hook>/ in SAELens' layout (cfg.json + "
                    "sae_weights.safetensors).")
    s.add_argument("--model", help="bundled name, model directory, .gguf file or Hugging Face id")
    s.add_argument("--hook", action="append", help="hook point, e.g. resid_post.14; repeat for several")
    s.add_argument("--cache", help="train on activations stored by `interlingua extract` instead of a model")
    _add_text_args(s, "train")
    s.add_argument("--random-init", type=seed, metavar="SEED",
                   help="train on a random-init copy of the model (the floor `sae eval --baseline` compares with)")
    s.add_argument("--out", required=True, help="output directory (checkpoint + SAEs)")
    s.add_argument("--overwrite", action="store_true", help="discard a checkpoint of a different job in --out")
    s.add_argument("--architecture", default="topk", choices=["topk", "batchtopk", "relu", "jumprelu"])
    s.add_argument("--latents", type=positive_int, help="dictionary size (default: --expansion × d_model)")
    s.add_argument("--expansion", type=positive_int, default=16,
                   help="latents per model dimension when --latents is not set")
    s.add_argument("--k", type=positive_int, default=32,
                   help="active latents per token (topk) or on average (batchtopk)")
    s.add_argument("--vectors", type=positive_int, default=2_000_000, help="training vectors (tokens) in total")
    s.add_argument("--batch-size", type=positive_int, default=1024, help="vectors per step")
    s.add_argument("--optimizer", default="sfadam", choices=["sfadam", "adam"],
                   help="schedule-free Adam or Adam with warm-up and linear decay")
    s.add_argument("--lr", type=finite_float(0.0, 1.0, above=True),
                   help="learning rate, above 0 and at most 1 (default: 5e-3 (sfadam) / 4e-3 (adam) × √(16384/latents))")
    s.add_argument("--sparsity-coefficient", type=non_negative_float,
                   help="L1 (relu, default 1.0) or L0 (jumprelu, default 0.002) weight against FVU")
    s.add_argument("--aux-coefficient", type=non_negative_float, default=1 / 32, help="AuxK weight (topk, batchtopk)")
    s.add_argument("--dead-after", type=positive_int, default=1_000_000,
                   help="vectors without firing before a latent is dead")
    s.add_argument("--compute-dtype", default="auto", choices=DTYPE_CHOICES,
                   help="dtype of the encoder matmul (auto: bfloat16 where the hardware supports it)")
    s.add_argument("--skip-first", type=non_negative_int, default=1,
                   help="leave out the first N positions of every document")
    s.add_argument("--outlier-factor", type=outlier_factor, default=10.0,
                   help="leave out positions whose norm exceeds this × the median (0: keep all; else at least 1)")
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--max-tokens", type=positive_int, default=1024, help="truncate documents to N tokens")
    s.add_argument("--docs-per-chunk", type=positive_int, default=64,
                   help="documents per streamed chunk (shuffled within)")
    s.add_argument("--checkpoint-every", type=positive_int, default=500, help="steps between checkpoints")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--threads", type=positive_int, help="torch CPU threads (on a busy machine 1 can be fastest)")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    s.set_defaults(fn=cmd_sae_train)

    s = ssub.add_parser(
        "eval", formatter_class=fmt, help="reconstruction, sparsity, downstream loss and top snippets of an SAE",
        description="Evaluate an SAE on held-out text: FVU, L0, dead and dense fractions, shrinkage, latent "
                    "density histogram, and the model's next-token loss with the SAE spliced in (CE and KL "
                    "recovered between zero-ablation and the clean model). --baseline adds an SAE trained the "
                    "same way on a random-init copy of the model, side by side. --snippets/--html list what the "
                    "most frequent latents fire on.")
    s.add_argument("--sae", required=True, help="SAE directory (cfg.json + sae_weights.safetensors)")
    s.add_argument("--baseline", help="SAE directory trained on a random-init model (sae train --random-init)")
    s.add_argument("--model", help="override the model recorded in the SAE")
    s.add_argument("--hook", help="override the hook point recorded in the SAE")
    _add_text_args(s, "test")
    s.add_argument("--max-tokens", type=positive_int, default=256, help="truncate documents to N tokens")
    s.add_argument("--no-downstream", action="store_true", help="skip the spliced-model loss (faster)")
    s.add_argument("--snippets", type=non_negative_int, default=0, metavar="N",
                   help="top snippets for the N most frequent latents")
    s.add_argument("--html", help="also write the report page (metrics, density, latent cards) to this file")
    s.add_argument("--out", help="output directory: the results as sae_eval.json and the report as report.html "
                                 "(`interlingua report DIR` draws it again)")
    _add_run_args(s)
    s.set_defaults(fn=cmd_sae_eval)

    s = ssub.add_parser(
        "match", formatter_class=fmt, help="match SAE latents of two models on aligned words",
        description="Correlate the latents of an SAE on model A with those of an SAE on model B over words "
                    "aligned in both tokenizations, match them one-to-one (Hungarian), and compare with a "
                    "shuffled-word null. --sae-a2 (a second seed on A) gives the seed-to-seed ceiling; the "
                    "cross-model fraction above the threshold is reported as a fraction of it.")
    s.add_argument("--sae-a", required=True)
    s.add_argument("--sae-b", required=True)
    s.add_argument("--sae-a2", help="another SAE on A's hook (different seed): the seed-to-seed ceiling")
    s.add_argument("--model-a", help="override the model recorded in --sae-a")
    s.add_argument("--model-b", help="override the model recorded in --sae-b")
    _add_text_args(s, "test")
    s.add_argument("--min-fires", type=positive_int, default=5, help="keep latents firing on at least N words")
    s.add_argument("--max-latents", type=positive_int, default=2048,
                   help="keep at most N latents per SAE (most frequent)")
    s.add_argument("--n-null", type=positive_int, default=3, help="shuffled-word repeats for the null")
    s.add_argument("--top", type=positive_int, default=20, help="best pairs to list")
    s.add_argument("--out", help="output directory: the full matching (every pair) as sae_match.json and the "
                                 "report as report.html; a path ending in .json names the JSON file itself "
                                 "(report.html goes beside it)")
    _add_run_args(s)
    s.set_defaults(fn=cmd_sae_match)

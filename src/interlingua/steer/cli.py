"""``interlingua steer``: evaluate steering, run the causal check of a translation, and move control
vectors in and out of llama.cpp's GGUF format. A thin layer: it parses, calls the library, prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interlingua.argtypes import non_negative_float, non_negative_int, positive_float, positive_int, seed
from interlingua.errors import InterlinguaError
from interlingua.models.dtype import DTYPE_CHOICES, DTYPE_HELP

DESCRIPTION = """\
Steer a model along a concept and judge the result against two baselines: a prompt that asks for the
concept and a norm-matched random vector (which must do nothing).

  evaluate   interlingua steer --model M --concept C [--layers 6,12,18] [--strengths 0.25,0.5,1]
             layer × strength sweep: behaviour (the concept's detector on the continuation, and the
             log-odds of concept words as the next token), perplexity under the unsteered model, KL on
             neutral text; a text table, --json, and with --out a JSON file, its report.html (effect
             against coherence with both baselines, every row, sample text) and a PNG.
  causal     interlingua steer --model B --source A --concept C[,C2…] [--translation DIR]
             translate C from A into B (or load a saved translation), steer B with the translated and
             with B's native concept at matched strength; efficacy e = effect_translated / effect_native
             judged by A's and B's detectors, with a random-vector null and the prompt baseline;
             with --out, causal.json and report.html.
  export     interlingua steer --model M --concept C --layers L [--strengths 0.25,0.5,1] --export-gguf FILE
             write the steering vector as a llama.cpp control vector (direction.L = resid_post.L) at
             the smallest strength that steers (beats a norm-matched random vector) and stays coherent
             (perplexity within 2.5× the unsteered text's); one --strengths value is exported as given.
             The file records that strength; llama.cpp: --control-vector FILE (scale 1 = as measured).
  import     interlingua steer --model M --concept C --import-gguf FILE [--strengths 0.5,1]
             evaluate a control vector file (strengths multiply the file's vectors, as llama.cpp's
             --control-vector-scaled does).

Strengths are relative to the typical activation norm at the hook (0.5 adds a vector half as long
as a typical activation), except for GGUF files.
"""


def _floats(text: str, what: str) -> list[float]:
    from interlingua.steer.strength import check_number

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InterlinguaError(f"{what} takes comma-separated numbers, not {text!r}.") from None
    if not values:
        raise InterlinguaError(f"{what} needs at least one number.")
    return [check_number(v, f"each of {what}") for v in values]


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InterlinguaError(f"{what} takes comma-separated layer numbers, not {text!r}.") from None


def _prompts(args) -> list[str]:
    from interlingua.steer.evaluate import DEFAULT_PROMPTS

    prompts = list(args.prompt or [])
    if args.prompts:
        from interlingua.textio import read_documents

        prompts += read_documents(args.prompts)
    return prompts or list(DEFAULT_PROMPTS)


def _subset(dataset, n: int):
    """The first ``n`` items of every split (0: all), for speed on a CPU."""
    return dataset.head(n)


def _concept_and_dataset(arg: str, model, max_examples: int):
    """A built-in / file concept dataset, or a saved Concept directory (plus its dataset if known)."""
    from interlingua.concepts import Concept, load_concept

    path = Path(arg)
    if path.is_dir() and (path / "concept.json").is_file():
        concept = Concept.load(path, model=model)
        name = concept.provenance.get("data", {}).get("concept") or concept.name
        try:
            dataset = _subset(load_concept(name), max_examples)
        except InterlinguaError:
            dataset = None
        return concept, dataset
    return None, _subset(load_concept(arg), max_examples)


def _settings(args):
    from interlingua.steer.evaluate import Settings

    return Settings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed,
                    batch_size=args.batch_size, chat=args.chat)


def _judges(args, model, concept, dataset, progress):
    """The concept's own detector in the steered model, plus --judge-model's detector."""
    from interlingua.concepts import find_concept
    from interlingua.models import load_model
    from interlingua.steer.evaluate import make_judge

    def detector(m):
        n = m.n_layers
        return find_concept(m, dataset, layers=range(n // 3, n, max(1, n // 6)), n_boot=20, n_null=2,
                            progress=progress)

    own = concept if concept is not None else detector(model)
    judges = [make_judge(f"{model.name}", own, dataset)]
    if args.judge_model:
        if dataset is None:
            raise InterlinguaError("--judge-model needs the concept's dataset to find its detector.")
        other = load_model(args.judge_model, dtype=args.dtype)
        judges.append(make_judge(f"{other.name}", detector(other), dataset))
    return judges


def cmd_steer(args) -> None:
    if args.source or args.translation:
        return _cmd_causal(args)
    from interlingua.models import load_model
    from interlingua.steer.evaluate import Evaluator, LayerDirection, concept_token_sets, layer_directions, \
        prompt_baseline, sweep

    progress = not args.json
    model = load_model(args.model, dtype=args.dtype)
    concept, dataset = _concept_and_dataset(args.concept, model, args.max_examples)
    strengths = _floats(args.strengths, "--strengths")
    if args.import_gguf:
        return _evaluate_file(args, model, concept, dataset, strengths, progress)
    if concept is not None:
        layers = [model.hook(concept.hook).layer]
        if args.layers and _ints(args.layers, "--layers") != layers:
            raise InterlinguaError(f"the saved concept lives at {concept.hook}; --layers cannot move it.")
        directions = [LayerDirection(concept.hook, concept.direction, concept.typical_norm)]
    else:
        n = model.n_layers
        layers = _ints(args.layers, "--layers") if args.layers else [n // 3, n // 2, (2 * n) // 3]
        directions = layer_directions(model, dataset, layers, method=args.method)
    if args.export_gguf:
        return _export_gguf(args, model, concept, dataset, directions, strengths, progress)
    if dataset is None:
        raise InterlinguaError("evaluating steering needs the concept's dataset (for the detectors and the baseline).")
    judges = _judges(args, model, concept, dataset, progress)
    ev = Evaluator(model, _prompts(args), judges, token_sets=concept_token_sets(model, dataset),
                   settings=_settings(args), progress=progress)
    positive = max(strengths, key=abs) >= 0
    base_prompts, prefix = prompt_baseline(ev.prompts, dataset, positive=positive, prefix=args.prompt_prefix)
    result = sweep(ev, directions, strengths, baseline_prompts=base_prompts, positions=args.positions)
    result.model, result.concept, result.prompt_prefix = model.name, dataset.name, prefix
    result.method = args.method if concept is None else concept.method
    _finish(args, result)


def _export_strength(args, model, concept, dataset, direction, strengths, progress) -> dict:
    """The strength to export: the one given, or the smallest of several that steers and stays coherent.

    Several strengths are swept on ``direction`` exactly as llama.cpp applies a control vector (every
    token), judged against the unsteered text and a norm-matched random vector
    (:func:`interlingua.steer.evaluate.choose_strength`).
    """
    from interlingua.steer.evaluate import Evaluator, choose_strength, concept_token_sets, prompt_baseline, sweep

    if len(strengths) == 1:
        return {"strength": strengths[0], "chosen_by": "given with --strengths (one value, not evaluated)"}
    if dataset is None:
        raise InterlinguaError("choosing the export strength needs the concept's dataset (for its detector); give "
                               "one strength to export it as it is.")
    judges = _judges(args, model, concept, dataset, progress)
    ev = Evaluator(model, _prompts(args), judges, token_sets=concept_token_sets(model, dataset),
                   settings=_settings(args), progress=progress)
    base_prompts, _ = prompt_baseline(ev.prompts, dataset, positive=max(strengths, key=abs) >= 0,
                                      prefix=args.prompt_prefix)
    result = sweep(ev, [direction], strengths, baseline_prompts=base_prompts, positions="all")
    return choose_strength(result, direction.hook)


def _export_gguf(args, model, concept, dataset, directions, strengths, progress) -> None:
    """Write one layer's steering vector as a llama.cpp control vector, at the strength :func:`_export_strength` picks."""
    from interlingua.steer.gguf import ControlVector, strength_metadata
    from interlingua.steer.interventions import add

    if len(directions) != 1:
        raise InterlinguaError("--export-gguf writes one layer's vector: give one layer (--layers L).")
    d = directions[0]
    chosen = _export_strength(args, model, concept, dataset, d, strengths, progress)
    s = chosen["strength"]
    path = Path(args.export_gguf)
    meta = strength_metadata(path.name, d.hook, s, d.typical_norm, chosen["chosen_by"], chosen.get("cells"))
    cv = ControlVector.from_interventions(model, add(d.direction, s, hook=d.hook, typical_norm=d.typical_norm),
                                          **{"interlingua.concept": dataset.name if dataset else concept.name}, **meta)
    cv.save(path)
    k = next(iter(cv.directions))
    info = {"path": str(path.resolve()), "model": model.name, "tensor": f"direction.{k}", "hook": d.hook,
            "strength": s, "chosen_by": chosen["chosen_by"], "typical_norm": round(d.typical_norm, 4),
            "vector_norm": round(float(cv.directions[k].norm()), 4), "llama_cpp": meta["interlingua.llama_cpp"]}
    if "cells" in chosen:
        info["sweep"] = chosen["cells"]
    if args.json:
        return print(json.dumps(info, indent=2))
    for c in chosen.get("cells", []):
        print(f"  strength {c['strength']:g}: effect {c['effect']} (random {c['random_effect']}), perplexity "
              f"{c['perplexity']}: {'effective' if c['effective'] else 'not effective'}, "
              f"{'coherent' if c['coherent'] else 'not coherent'}")
    print(f"wrote {info['path']}: {info['tensor']} (added to {d.hook} at every token by llama.cpp), norm "
          f"{info['vector_norm']} = {s:g} × typical norm {info['typical_norm']} ({chosen['chosen_by']})")
    print(f"  use it: {info['llama_cpp']}")


def _evaluate_file(args, model, concept, dataset, strengths, progress) -> None:
    from interlingua.steer.evaluate import Evaluator, LayerDirection, concept_token_sets, prompt_baseline, \
        random_direction, sweep
    from interlingua.steer.gguf import ControlVector
    from interlingua.steer.interventions import add

    if dataset is None:
        raise InterlinguaError("evaluating a control vector needs the concept's dataset (for the detectors).")
    cv = ControlVector.load(args.import_gguf)
    cv.interventions(model)  # width and depth checks
    judges = _judges(args, model, concept, dataset, progress)
    ev = Evaluator(model, _prompts(args), judges, token_sets=concept_token_sets(model, dataset),
                   settings=_settings(args), progress=progress)
    norm = {k: float(v.norm()) for k, v in cv.directions.items()}
    whole = LayerDirection("resid_post." + ",".join(map(str, sorted(cv.directions))), cv.directions[min(cv.directions)], 1.0)

    def build(d: LayerDirection, s: float):
        if d.direction is whole.direction:
            return cv.interventions(model, s)
        # the null: a random direction at each of the file's layers, with that layer's norm
        return [add(random_direction(model.d_model, args.seed + 1000 * k) * norm[k], s, hook=f"resid_post.{k}",
                    scale="raw") for k in sorted(cv.directions)]

    base_prompts, prefix = prompt_baseline(ev.prompts, dataset, positive=max(strengths, key=abs) >= 0,
                                           prefix=args.prompt_prefix)
    result = sweep(ev, [whole], strengths, baseline_prompts=base_prompts, make_interventions=build)
    result.settings.strength_scale = "multiplier of the file's vectors (llama.cpp --control-vector-scaled)"
    result.model, result.concept, result.prompt_prefix = model.name, dataset.name, prefix
    result.control_vector, result.layers = str(args.import_gguf), sorted(cv.directions)
    _finish(args, result)


def _finish(args, result) -> None:
    """Save the sweep with its renderings (with --out), then print it as text or JSON."""
    from interlingua.report import steer as report

    out = result.to_json()
    files = report.write_sweep(result, args.out) if args.out else None
    if files:
        out["plot"] = None if files["plot"] is None else str(files["plot"])
    if args.json:
        return print(json.dumps(out, indent=2))
    print(report.sweep_text(result))
    if files:
        print(f"saved to {args.out} (steer.json, steer.txt{', steer.png' if files['plot'] else ''}, report.html)")


def _cmd_causal(args) -> None:
    from interlingua.concepts import load_concept
    from interlingua.models import load_model
    from interlingua.report import steer as report
    from interlingua.steer.causal import run_causal
    from interlingua.translate import Translation

    model_b = load_model(args.model, dtype=args.dtype)
    strengths = _floats(args.strengths, "--strengths")
    translation = None
    if args.translation:
        translation = Translation.load(args.translation)
        model_a = load_model(args.source or translation.source.model_name, dtype=args.dtype)
        names = [args.concept or translation.source.name]
    else:
        if not args.source:
            raise InterlinguaError("the causal check needs --source (model A) or --translation DIR.")
        model_a = load_model(args.source, dtype=args.dtype)
        names = [c for c in args.concept.split(",") if c]
    datasets = [_subset(load_concept(name), args.max_examples) for name in names]
    result = run_causal(model_a, model_b, datasets, translation=translation, prompts=_prompts(args),
                        strengths=strengths, native_method=args.native_method, settings=_settings(args),
                        corpus_docs=args.corpus_docs, steered_docs=args.steered_docs,
                        steered_strength=args.steered_strength, seed=args.seed, out=args.out,
                        progress=not args.json)
    if args.out:
        report.write_causal(result, args.out)
    if args.json:
        return print(json.dumps(result.to_json(), indent=2))
    print(report.causal_text(result))
    if args.out:
        print(f"saved to {Path(args.out) / 'causal.json'} and {Path(args.out) / 'report.html'}")


def add_steer_parser(sub) -> None:
    """Register ``interlingua steer`` on the main command's subparsers."""
    s = sub.add_parser("steer", help="steer a model along a concept: sweep, baselines, causal check, GGUF vectors",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", required=True, help="the model to steer (B in a causal check)")
    s.add_argument("--concept", help="built-in concept name, concept file, or a saved concept directory "
                                     "(comma-separated names for a causal check)")
    s.add_argument("--prompts", help="prompts file (one per line, or .jsonl with \"text\")")
    s.add_argument("--prompt", action="append", help="a prompt (repeatable); default: 8 neutral sentence openings")
    s.add_argument("--layers", help="comma-separated resid_post layers to steer (default: 1/3, 1/2, 2/3 depth)")
    s.add_argument("--strengths", default="0.25,0.5,1.0",
                   help="comma-separated strengths, × the typical activation norm at the hook (default 0.25,0.5,1.0)")
    s.add_argument("--method", default="diff_of_means", choices=["diff_of_means", "logistic", "pca"],
                   help="how the steering direction is found at each layer (default diff_of_means, which steers "
                        "better than probes in published comparisons)")
    s.add_argument("--positions", default="all", choices=["all", "prompt", "generated"],
                   help="which tokens are steered ('generated' includes the prompt's last token, which produces "
                        "the first new token)")
    s.add_argument("--judge-model", help="also judge the text with the concept's detector in this model")
    s.add_argument("--prompt-prefix", help="the prompt baseline's prefix (default: three positive training texts)")
    s.add_argument("--max-new-tokens", type=positive_int, default=24)
    s.add_argument("--temperature", type=non_negative_float, default=0.0, help="0 = greedy (default)")
    s.add_argument("--batch-size", type=positive_int, default=8)
    s.add_argument("--max-examples", type=non_negative_int, default=80,
                   help="use the first N items of each concept split (default 80; 0 = all) — for speed on a CPU")
    s.add_argument("--chat", action="store_true", help="wrap prompts in the tokenizer's chat template")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    s.add_argument("--source", help="model A: run the causal check of translating --concept from A into --model")
    s.add_argument("--translation", help="a saved translation directory (interlingua translate --out) to check")
    s.add_argument("--native-method", default="logistic", choices=["diff_of_means", "logistic", "pca"],
                   help="how B's native concept is found for the causal check (default logistic)")
    s.add_argument("--corpus-docs", type=positive_int, default=40,
                   help="corpus documents in the translation's shared text")
    s.add_argument("--steered-docs", type=non_negative_int, default=0,
                   help="add N texts sampled from A steered toward (half) and away from (half) the concept to the "
                        "translation's shared text (the concept's generative mode; default 0)")
    s.add_argument("--steered-strength", type=positive_float, default=0.25,
                   help="strength of that steering, × typical norm (default 0.25)")
    s.add_argument("--export-gguf", metavar="FILE", help="write the steering vector as a llama.cpp control vector")
    s.add_argument("--import-gguf", metavar="FILE", help="evaluate a llama.cpp control vector file")
    s.add_argument("--out", help="directory for steer.json / steer.txt / steer.png / report.html (or causal.json / report.html)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(fn=_dispatch)


def _dispatch(args) -> None:
    if not args.concept and not args.translation:
        raise InterlinguaError("give --concept (a built-in concept, a concept file or a saved concept directory).")
    cmd_steer(args)

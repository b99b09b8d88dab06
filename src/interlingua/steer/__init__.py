"""Steering: interventions on activations that are correct under ``generate()``, and their evaluation.

* :mod:`~interlingua.steer.interventions`: :func:`add`, :func:`ablate`, :func:`clamp`,
  :func:`custom` and the :func:`steering` context manager (padding-, batch- and KV-cache-correct
  token positions).
* :mod:`~interlingua.steer.strength`: what a strength means (relative to the hook's typical norm).
* :mod:`~interlingua.steer.generate`: steered continuations and the steered text sampler.
* :mod:`~interlingua.steer.generative`: the concept's generative mode (sampled, steered toward /
  away at strengths calibrated by the concept's own detector, chat rewrites), with provenance.
* :mod:`~interlingua.steer.evaluate`: behaviour score, coherence cost, layer × strength sweep
  with a prompt baseline and a norm-matched random vector.
* :mod:`~interlingua.steer.causal`: the causal check of a translated concept (efficacy), and :func:`run_causal`,
  the whole pipeline (find in A, translate into B, check).

* :mod:`~interlingua.steer.results`: the typed results (``steer.json``, ``causal.json``) that
  :mod:`interlingua.report.steer` renders.
* :mod:`~interlingua.steer.gguf`: llama.cpp GGUF control vectors, export and import.
"""

from interlingua.steer.generate import Generations, generate, steered_texts
from interlingua.steer.generative import GeneratedText, GeneratedTexts, calibrate_strengths, concept_texts
from interlingua.steer.interventions import Intervention, Step, ablate, add, clamp, custom, steering

__all__ = ["GeneratedText", "GeneratedTexts", "Generations", "Intervention", "Step", "ablate", "add",
           "calibrate_strengths", "clamp", "concept_texts", "custom", "generate", "steered_texts", "steering"]

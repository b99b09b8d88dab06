"""Translate stage: carry a concept found in model A into model B, with evidence and controls."""

from interlingua.translate.evaluate import recovery
from interlingua.translate.pairs import WordPairs, paired_words
from interlingua.translate.readout import fit_transfer, select_ridge
from interlingua.translate.shared_text import SharedText, build_shared_text
from interlingua.translate.translate import TranslateConfig, Translation, translate_concept

__all__ = ["SharedText", "TranslateConfig", "Translation", "WordPairs", "build_shared_text", "fit_transfer",
           "paired_words", "recovery", "select_ridge", "translate_concept"]

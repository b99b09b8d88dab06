"""Translate stage: carry a concept found in model A into model B, with evidence."""

from interlingua.translate.pairs import WordPairs, paired_words
from interlingua.translate.readout import fit_transfer
from interlingua.translate.translate import Translation, recovery, translate_concept

__all__ = ["Translation", "WordPairs", "fit_transfer", "paired_words", "recovery", "translate_concept"]

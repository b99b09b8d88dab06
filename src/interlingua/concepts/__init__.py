"""Concepts stage: model-independent concept definitions, discovery methods, and `Concept`."""

from interlingua.concepts.concept import Concept
from interlingua.concepts.dataset import ConceptDataset, builtin_names, list_concepts, load_concept
from interlingua.concepts.find import find_concept
from interlingua.concepts.methods import METHODS, diff_of_means, logistic_probe, pca_of_differences

__all__ = ["METHODS", "Concept", "ConceptDataset", "builtin_names", "diff_of_means", "find_concept",
           "list_concepts", "load_concept", "logistic_probe", "pca_of_differences"]

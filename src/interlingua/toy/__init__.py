"""Toy-model lab: toy models with known features, synthetic data, metrics and the paper suite.

Modules: :mod:`~interlingua.toy.data` (TMS and planted-feature generators, the Gaussian control),
:mod:`~interlingua.toy.models`, :mod:`~interlingua.toy.train`, :mod:`~interlingua.toy.metrics`,
:mod:`~interlingua.toy.geometry` (analytic polytopes), :mod:`~interlingua.toy.sae` (a minimal
ReLU-L1 SAE for the suite), :mod:`~interlingua.toy.crossmodel` (interlingua's translation and
matching scored against known features across two toy models), :mod:`~interlingua.toy.suite`
(the checks) and :mod:`~interlingua.toy.cli` (``interlingua toy``).
"""

from interlingua.toy.data import (
    GaussianControl,
    PlantedFeatures,
    feature_probabilities,
    planted_features,
    tms_batch,
    unit_directions,
)
from interlingua.toy.metrics import (
    canonicalise_neurons,
    correlation_matrix,
    correspondence_scores,
    datapoint_dimensionality,
    dimensions_per_feature,
    feature_dimensionality,
    feature_correspondence_scores,
    feature_coverage,
    features_per_dimension,
    frobenius_features_per_dimension,
    hungarian_match,
    interference,
    matched_mcc,
    mmcs,
    monosemantic_fraction,
    recovery_rate,
    represented_features,
    sae_health,
    unit_selectivity,
    welch_bound,
)
from interlingua.toy.models import FactorisedModel, ProjectedMLP, TiedSuperposition
from interlingua.toy.suite import CHECKS, CheckResult, run_checks
from interlingua.toy.crossmodel import ProjectedWorld, compare_models, unit_profiles

__all__ = [
    "CHECKS", "CheckResult", "FactorisedModel", "GaussianControl", "PlantedFeatures", "ProjectedMLP",
    "ProjectedWorld", "TiedSuperposition", "canonicalise_neurons", "compare_models", "correlation_matrix",
    "correspondence_scores", "datapoint_dimensionality", "dimensions_per_feature", "feature_correspondence_scores",
    "feature_coverage", "feature_dimensionality", "feature_probabilities", "features_per_dimension",
    "frobenius_features_per_dimension", "hungarian_match", "interference", "matched_mcc", "mmcs",
    "monosemantic_fraction", "planted_features", "recovery_rate", "represented_features", "run_checks",
    "sae_health", "tms_batch", "unit_directions", "unit_profiles", "unit_selectivity", "welch_bound",
]

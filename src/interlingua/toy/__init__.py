"""Toy-model lab: toy models with known features, synthetic data, metrics and the paper suite.

Modules: :mod:`~interlingua.toy.data` (TMS and planted-feature generators, the Gaussian control),
:mod:`~interlingua.toy.models`, :mod:`~interlingua.toy.train`, :mod:`~interlingua.toy.metrics`,
:mod:`~interlingua.toy.geometry` (analytic polytopes), :mod:`~interlingua.toy.sae` (a minimal
ReLU-L1 SAE for the suite), :mod:`~interlingua.toy.suite` (the checks) and
:mod:`~interlingua.toy.cli` (``interlingua toy``).
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
    datapoint_dimensionality,
    dimensions_per_feature,
    feature_dimensionality,
    features_per_dimension,
    frobenius_features_per_dimension,
    interference,
    matched_mcc,
    mmcs,
    recovery_rate,
    sae_health,
    welch_bound,
)
from interlingua.toy.models import FactorisedModel, ProjectedMLP, TiedSuperposition
from interlingua.toy.suite import CHECKS, CheckResult, run_checks

__all__ = [
    "CHECKS", "CheckResult", "FactorisedModel", "GaussianControl", "PlantedFeatures", "ProjectedMLP",
    "TiedSuperposition", "canonicalise_neurons", "datapoint_dimensionality", "dimensions_per_feature",
    "feature_dimensionality", "feature_probabilities", "features_per_dimension",
    "frobenius_features_per_dimension", "interference", "matched_mcc", "mmcs", "planted_features",
    "recovery_rate", "run_checks", "sae_health", "tms_batch", "unit_directions", "welch_bound",
]

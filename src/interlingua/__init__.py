"""interlingua: find a concept in one language model and its counterpart in another.

The pipeline, one stage per module: models → activations → align → concepts → translate
→ audit / steer → report.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("interlingua")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"

from interlingua.models import LoadedModel, load_model

__all__ = ["LoadedModel", "__version__", "load_model"]

"""argparse types for every numeric option of every ``interlingua`` command.

A number the user types is checked when the command line is parsed, before any model loads:
a count must be a whole number in range, a rate or weight a finite number in range. A value
that would be misread (``--max-docs -5`` slicing from the end, ``--lr nan``, ``--latents 0``
falling back to the default) is refused with a message naming the option and the range, and
argparse exits with status 2 and no traceback. All CLIs (``interlingua``, ``sae``, ``steer``,
``toy``) share these.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds both accept it; larger or negative ones fail deep inside


def whole(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in ``[lo, hi]`` (no upper bound without ``hi``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    parse.__name__ = "whole number"  # what argparse calls the type in its own messages
    return parse


positive_int = whole(1)
"""A count: 1, 2, 3, …"""

non_negative_int = whole(0)
"""A count where 0 means something (none, or all: the option's help says which)."""

seed = whole(0, SEED_MAX)
"""A random seed."""


def finite_float(lo: float = -math.inf, hi: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``); NaN and infinities are refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < lo or (above and value == lo) or value > hi:
            low = f"above {lo:g}" if above else f"at least {lo:g}"
            span = low if hi == math.inf else f"at most {hi:g}" if lo == -math.inf else f"{low} and at most {hi:g}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


positive_float = finite_float(0.0, above=True)
"""A finite number above 0."""

non_negative_float = finite_float(0.0)
"""A finite number, 0 or more."""

"""When a feature counts as drifted (no numpy here: the command line reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_PVALUE_THRESHOLD = 0.001


@dataclass(frozen=True)
class Thresholds:
    psi: float = DEFAULT_PSI_THRESHOLD
    pvalue: float = DEFAULT_PVALUE_THRESHOLD


DEFAULT_THRESHOLDS = Thresholds()

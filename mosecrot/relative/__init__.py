"""Relative representations (MoSECroT): map any token space to the PLM embedding space through anchors.

Registries: ``SIMILARITIES`` (how tokens compare to anchors), ``SPARSIFIERS`` (which anchors count),
``WEIGHTINGS`` (how much each counts). ``build_mapping`` combines them, chunked.
"""

from mosecrot.relative.mapping import (
    MappingDiagnostics,
    MappingResult,
    RelativeConfig,
    build_mapping,
    compute_mapping,
)
from mosecrot.relative.similarity import SIMILARITIES
from mosecrot.relative.sparsify import SPARSIFIERS
from mosecrot.relative.weighting import WEIGHTINGS

__all__ = [
    "SIMILARITIES",
    "SPARSIFIERS",
    "WEIGHTINGS",
    "MappingDiagnostics",
    "MappingResult",
    "RelativeConfig",
    "build_mapping",
    "compute_mapping",
]

"""mosecrot: the science of crosslingual zero-shot transfer (MoSECroT stitching, baselines, EMS).

This package never imports Ray or MLflow; the `orchestrator` package does the distributed and tracked
parts on top of it.
"""

__version__ = "0.1.0"

"""siked: Self-guided Iterative Knowledge Distillation for math reasoning."""

__version__ = "0.1.0"

import os as _os

# With the default OMP_WAIT_POLICY, idle OpenMP threads spin; on a small shared CPU (2 cores,
# with sandbox workers or another job beside torch) this slowed a 135M forward pass ~20x
# (0.2 s -> 4 s measured on the reference machine). PASSIVE must be set before torch loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

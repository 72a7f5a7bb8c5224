"""siked: Self-guided Iterative Knowledge Distillation for math reasoning."""

__version__ = "0.1.0"

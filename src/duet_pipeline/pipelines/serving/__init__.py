"""serving pipeline: the trained DUET model's two halves, ready to deploy."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

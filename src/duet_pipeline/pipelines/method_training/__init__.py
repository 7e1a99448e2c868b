"""method_training pipeline: the cloud training of every selected method that has its own recipe."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

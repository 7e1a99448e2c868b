"""dccl pipeline: the DCCL loop, one node per stage of every round."""
from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

"""``duet``: the whole flow for the backbone named by the ``backbone`` parameter."""
from kedro.pipeline import Pipeline

from ..stages import DATA_STAGES, MODEL_STAGES, compose


def create_pipeline(**kwargs) -> Pipeline:
    return compose(DATA_STAGES) + compose(MODEL_STAGES)

"""``duet``: the whole flow for the backbone named by ``params:backbone`` and the methods
named by ``params:methods``."""
from kedro.pipeline import Pipeline

from ..selection import current
from ..stages import data_stages, model_stages


def create_pipeline(**kwargs) -> Pipeline:
    return data_stages() + model_stages(current())

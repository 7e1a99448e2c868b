"""Kedro transcoding of the datasets some runs read or write in another form.

The spark engine reads and writes the feature stage's datasets as Spark DataFrames
(``<name>@spark``), and streaming training reads the train samples' files
(``train_samples@files``). Once a pipeline transcodes a dataset, Kedro requires every
node to name a form, so the registry renames the other nodes' ``<name>`` to
``<name>@pandas`` (catalog.yml defines both under the same file).
"""
from __future__ import annotations

from kedro.pipeline import Pipeline, pipeline

from duet_pipeline.run_parameters import Selection

from .selection import current

SPARK_DATASETS = ("interactions", "item_index", "train_samples", "validation_samples", "test_samples")
STREAMED_DATASETS = ("train_samples",)


def transcoded_datasets(chosen: Selection) -> set[str]:
    """The datasets this run reads or writes in a second form."""
    return (set(SPARK_DATASETS) if chosen.engine == "spark" else set()) | (
        set(STREAMED_DATASETS) if chosen.streaming else set())


def with_pandas_names(pipe: Pipeline, names: set[str]) -> Pipeline:
    """``pipe`` with its bare uses of ``names`` renamed ``<name>@pandas`` (in every
    registered pipeline, since `--pipelines=a,b` combines them)."""
    bare = names & pipe.datasets()
    if not bare:
        return pipe
    free = pipe.inputs()
    return pipeline(pipe, inputs={name: f"{name}@pandas" for name in bare & free},
                    outputs={name: f"{name}@pandas" for name in bare - free})


def for_this_run(pipe: Pipeline) -> Pipeline:
    """``pipe`` named for the current run's transcodings: what every composed pipeline
    applies to each stage before adding them up (Kedro checks the names on addition)."""
    return with_pandas_names(pipe, transcoded_datasets(current()))

"""PROTOCOL section 2 in Spark: the spark engine of the feature stage (``features.engine: spark``).

The same samples as the pandas engine (features/samples.py), row for row, computed
with Spark's own operators so that it scales past one machine's memory: a window per
user for the counts, the click order and the sliding history; a broadcast join for the
re-indexing; the leave-one-out split from the click position. The negatives are drawn
per user in Arrow batches (``mapInArrow``) by the very function the pandas engine
calls, features/negatives.py, whose stream is keyed by (seed, split, user, position),
so Spark's partitioning cannot change them.

Nothing here converts to or from pandas: pyspark 4.3 does not fully support pandas 3,
and the data stay in the JVM except for the negatives' Arrow batches.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from .negatives import keyed_negatives, user_item_keys

SPLIT_COLUMN = "split"
DRAWN_SCHEMA = (f"{SPLIT_COLUMN} string, user_id long, position long, history array<long>, target_item long, "
                "negatives array<long>")


def make_samples_spark(
    interactions: DataFrame,
    item_index: DataFrame,
    max_seq_len: int,
    min_user_interactions: int,
    negatives: dict[str, int],
    seed: int,
) -> dict[str, DataFrame]:
    """Train, validation and test samples, in the stored layout of features/samples.py."""
    # Read by the item check, the candidates, the seen sets and the windows: computed once.
    clicks = _ordered_clicks(interactions, item_index, min_user_interactions).persist(
        StorageLevel.MEMORY_AND_DISK)
    positives = _positives(clicks, max_seq_len)
    candidate_items = np.asarray(
        [row[0] for row in clicks.select("item_id").distinct().orderBy("item_id").collect()], dtype=np.int64
    )
    num_items = int(item_index.agg(F.max("item_index")).first()[0])
    seen = clicks.groupBy("user_id").agg(F.collect_set("item_id").alias("seen"))
    per_user = (positives.groupBy("user_id", SPLIT_COLUMN)
                .agg(F.collect_list(F.struct("position", "history", "target_item")).alias("positives"))
                .join(seen, "user_id"))
    draw = partial(_draw_batches, seed=seed, negatives=dict(negatives), candidate_items=candidate_items,
                   num_items=num_items)
    # The pandas engine's row order (user, then time), so that training reads the same
    # rows in the same order whichever engine wrote them. Written three times (one
    # dataset per split): computed once; SparkHook releases it when the run ends.
    samples = per_user.mapInArrow(draw, DRAWN_SCHEMA).orderBy("user_id", "position").persist(
        StorageLevel.MEMORY_AND_DISK)
    return {split: samples.where(F.col(SPLIT_COLUMN) == split).drop(SPLIT_COLUMN, "position") for split in negatives}


def _ordered_clicks(interactions: DataFrame, item_index: DataFrame, min_user_interactions: int) -> DataFrame:
    """PROTOCOL 2.2-2.4: re-indexed clicks of users long enough, with each one's position in its user's time order."""
    per_user = Window.partitionBy("user_id")
    interactions = (interactions.withColumn("clicks", F.count(F.lit(1)).over(per_user))
                    .where(F.col("clicks") >= min_user_interactions))
    index = F.broadcast(item_index.select(F.col("raw_item_id").alias("item_id"), "item_index"))
    unknown = interactions.join(index, "item_id", "left_anti").select("item_id").distinct().limit(5).collect()
    if unknown:
        raise ValueError(
            f"item_index has no entry for raw item ids {sorted(row[0] for row in unknown)}: the item_index "
            "dataset does not belong to these interactions; re-run the ingestion pipeline."
        )
    interactions = interactions.join(index, "item_id").drop("item_id").withColumnRenamed("item_index", "item_id")
    # Ties in time keep the file order (PROTOCOL 2.4), as the pandas engine's stable sort.
    in_time = per_user.orderBy("timestamp", "row_order")
    return interactions.withColumn("position", (F.row_number().over(in_time) - 1).cast("long"))


def _positives(clicks: DataFrame, max_seq_len: int) -> DataFrame:
    """PROTOCOL 2.5-2.6: each target click with its left-padded history and its split."""
    in_time = Window.partitionBy("user_id").orderBy("position")
    before = F.collect_list("item_id").over(in_time.rowsBetween(-max_seq_len, -1))
    padding = F.array_repeat(F.lit(0).cast("long"), F.lit(max_seq_len) - F.size(before))
    last = F.col("clicks") - 1
    split = (F.when(F.col("position") == last, "test")
             .when(F.col("position") == last - 1, "validation")
             .otherwise("train"))
    return (clicks.withColumn("history", F.concat(padding, before.cast("array<long>")))
            .withColumn(SPLIT_COLUMN, split)
            .where(F.col("position") >= 1)
            .select("user_id", "position", "history", F.col("item_id").cast("long").alias("target_item"),
                    SPLIT_COLUMN))


def _draw_batches(batches: Iterator[pa.RecordBatch], seed: int, negatives: dict[str, int],
                  candidate_items: np.ndarray, num_items: int) -> Iterator[pa.RecordBatch]:
    """Rows (user, split, the user's positives in it, the user's items) -> one row per positive."""
    for batch in batches:
        for split in negatives:
            rows = batch.filter(pc.equal(batch.column(SPLIT_COLUMN), split))
            if rows.num_rows:
                yield _draw_split(rows, split, seed, negatives[split], candidate_items, num_items)


def _draw_split(rows: pa.RecordBatch, split: str, seed: int, num_negatives: int, candidate_items: np.ndarray,
                num_items: int) -> pa.RecordBatch:
    users = rows.column("user_id").to_numpy()
    nested = rows.column("positives")
    counts = pc.list_value_length(nested).to_numpy(zero_copy_only=False)
    positives = nested.flatten()
    seen = rows.column("seen")
    seen_users = np.repeat(users, pc.list_value_length(seen).to_numpy(zero_copy_only=False))
    seen_keys = user_item_keys(seen_users, seen.flatten().to_numpy(zero_copy_only=False), num_items)
    positive_users = np.repeat(users, counts)
    drawn = keyed_negatives(seed, split, positive_users, positives.field("position").to_numpy(zero_copy_only=False),
                            num_negatives, candidate_items, seen_keys, num_items)
    flat = pa.array(drawn.reshape(-1))
    offsets = pa.array(np.arange(0, drawn.size + 1, num_negatives, dtype=np.int32))
    return pa.RecordBatch.from_arrays(
        [pa.array(np.full(len(positive_users), split)), pa.array(positive_users), positives.field("position"),
         positives.field("history").cast(pa.list_(pa.int64())), positives.field("target_item"),
         pa.ListArray.from_arrays(offsets, flat)],
        names=[SPLIT_COLUMN, "user_id", "position", "history", "target_item", "negatives"],
    )

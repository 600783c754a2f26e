"""Stage ``partition`` on text: the forget set by kind (random, canaries, low/mid/high/mix by exact memorization
or a proxy) and its RUM refinement (partition.py); ScoreSources.labels is each sequence's canary copy count, so
the class histogram reads as canaries by copies and ``canaries`` picks them."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import from_params
from ...io import load_table, save_json, save_table
from ...partition import PartitionConfig, ScoreSources, choose_forget_set, describe_forget_set
from ...tracking import StageRecord
from ..base import StagePaths
from .common import load_prepared


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    config = from_params(PartitionConfig, params["partition"], "partition")
    data = load_prepared(paths)
    sources = ScoreSources(load_table(paths.memorize / "scores.parquet", "memorize"),
                           load_table(paths.proxies / "proxies.parquet", "proxies"), data.copies())
    forget = choose_forget_set(config, sources)
    save_table(forget, paths.partition / "forget.csv")
    metrics = describe_forget_set(forget, sources, data.canary_ids)
    metrics["canaries_in_forget"] = metrics["planted_noise_in_forget"]
    metrics["canary_copies"] = len(data.canary_ids)
    save_json(metrics, paths.metrics / "partition.json")
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return StageRecord("partition", metrics=flat, artifacts=[paths.partition / "forget.csv"])

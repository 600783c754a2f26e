"""Stage ``proxies`` on text: the learning-event proxies (the text modality's PROXIES), from the per-sequence
token statistics the train stage recorded; their cost is the recording's."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import from_params
from ...io import load_json, load_table, save_json, save_table
from ...memorization.proxies import ProxyConfig, ProxyInputs, compute_proxies, proxy_costs
from ...tracking import StageRecord
from ..base import StagePaths
from ..applies import PROXIES
from .common import load_prepared


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    config = from_params(ProxyConfig, params["proxies"], "proxies")
    names = list(config.names) or list(PROXIES)
    data = load_prepared(paths.prepared)
    inputs = ProxyInputs(train=data.train, heldout=None, info=data.info, model=None, device=None, config=config,
                         learning_events=load_table(paths.train / "learning_events.parquet", "train"))
    table, own_seconds = compute_proxies(names, inputs)
    save_table(table, paths.proxies / "proxies.parquet")
    recorded = load_json(paths.metrics / "train.json", "train")
    seconds = proxy_costs(names, own_seconds, {"learning_events": recorded["learning_event_seconds"],
                                               "curvature": 0.0, "curvature_rademacher": 0.0})
    metrics = {"seconds": seconds, "examples_processed": len(data.train)}
    save_json(metrics, paths.proxies / "cost.json")
    return StageRecord("proxies", metrics={f"seconds.{k}": v for k, v in seconds.items()},
                       artifacts=[paths.proxies / "proxies.parquet"])

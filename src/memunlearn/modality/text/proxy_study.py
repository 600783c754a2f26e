"""Stage ``proxy_study`` on text: how well and how cheaply each learning-event proxy stands in for exact
memorization (memorization/study.py, as the image stage), the canaries as the planted examples."""
from __future__ import annotations

from typing import Any, Mapping

from ...config import from_params
from ...io import load_json, load_table, save_json, save_table
from ...memorization import ProxyConfig
from ...memorization.study import plot_proxy_vs_exact, proxy_study
from ...tracking import StageRecord
from ..base import StagePaths
from .common import load_prepared


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    top_n = from_params(ProxyConfig, params["proxies"], "proxies").top_n
    proxies = load_table(paths.proxies / "proxies.parquet", "proxies")
    exact = load_table(paths.memorize / "scores.parquet", "memorize").set_index("example_id")["mem"]
    planted = load_prepared(paths.prepared).canary_ids
    proxy_seconds = load_json(paths.proxies / "cost.json", "proxies")["seconds"]
    exact_seconds = load_json(paths.metrics / "memorize.json", "memorize")["compute_seconds"]
    table = proxy_study(proxies, exact, planted, proxy_seconds, exact_seconds, top_n)
    save_table(table, paths.results / "proxy_study.csv")
    plots = paths.results / "plots" / "proxy_vs_exact"
    plot_proxy_vs_exact(proxies, exact, plots, planted)
    metrics = {row.pop("proxy"): row for row in table.to_dict("records")}
    metrics["exact_seconds"] = exact_seconds
    save_json(metrics, paths.metrics / "proxy_study.json")
    flat = {f"{p}.{k}": v for p, row in metrics.items() if isinstance(row, dict) for k, v in row.items()
            if isinstance(v, (int, float))}
    return StageRecord("proxy_study", metrics={**flat, "exact_seconds": exact_seconds},
                       artifacts=[paths.results / "proxy_study.csv", plots])

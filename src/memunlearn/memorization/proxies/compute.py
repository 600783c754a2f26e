"""Run the registered proxies into one table, and count what each costs."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ...data.owner_ids import ID_COLUMNS
from .base import PROXIES, ProxyInputs


def compute_proxies(names: list[str], inputs: ProxyInputs) -> tuple[pd.DataFrame, dict[str, float]]:
    """Wide table (``example_id``; per proxy ``<name>`` score and ``<name>__raw``) and seconds per proxy.

    The seconds are each proxy's own computation here; the shared forward pass
    is timed once under ``final_pass``.
    """
    table = pd.DataFrame({"example_id": inputs.example_ids})
    seconds: dict[str, float] = {}
    if any(PROXIES.get(n).cost_source == "final_pass" for n in names):
        start = time.perf_counter()
        _ = inputs.final_probs
        seconds["final_pass"] = time.perf_counter() - start
    for name in names:
        proxy = PROXIES.get(name)
        start = time.perf_counter()
        raw = np.asarray(proxy.compute(inputs), dtype=np.float64)
        seconds[name] = time.perf_counter() - start
        if raw.shape != inputs.example_ids.shape:
            raise RuntimeError(f"proxy {name!r} returned shape {raw.shape}, expected {inputs.example_ids.shape}")
        table[name] = proxy.direction * raw
        table[f"{name}__raw"] = raw
    return table, seconds


def recorded_proxies(curvature: pd.DataFrame | None) -> list[str]:
    """``proxies.names: []``: every registered proxy whose training-time records exist (a curvature estimator
    left out of ``train_records.curvature_estimators`` has no column, so its proxy is skipped, not an error)."""
    from ...training.curvature import ESTIMATOR_COLUMNS

    missing = set(ESTIMATOR_COLUMNS.values()) - set(curvature.columns if curvature is not None else ())
    return [name for name in PROXIES.names() if name not in missing]


RECORDED = ("learning_events", "curvature", "curvature_rademacher")  # cost sources recorded while training


def final_model_proxies(names: list[str], named: bool, init: str) -> tuple[list[str], dict[str, str]]:
    """``names`` without the proxies that read training records when the original was loaded, not trained
    (``init``: train.init's description, "" when trained here), and why each was skipped. Proxies the user
    ``named`` in proxies.names that cannot be computed are an error."""
    if not init:
        return names, {}
    needs = [n for n in names if PROXIES.get(n).cost_source in RECORDED]
    if named and needs:
        raise ValueError(f"proxies.names: {needs} need records of the original's training, but train.init loaded a "
                         f"model trained elsewhere ({init}); remove them from proxies.names or set train.init to \"\"")
    reason = "needs records of the original's training ({}); train.init loaded a trained model"
    return ([n for n in names if n not in needs],
            {n: reason.format(PROXIES.get(n).cost_source.replace("_", " ")) for n in needs})


def score_columns(table: pd.DataFrame) -> list[str]:
    """The proxy names of a ``compute_proxies`` table (not ``example_id``/``owner_id``, not ``<name>__raw``)."""
    return [c for c in table.columns if c not in ID_COLUMNS and not c.endswith("__raw")]


def proxy_costs(names: list[str], own_seconds: dict[str, float], shared_seconds: dict[str, float]) -> dict[str, float]:
    """Total seconds per proxy: its own computation plus the shared work it reads.

    ``shared_seconds`` holds ``learning_events``, ``curvature`` and
    ``curvature_rademacher`` (recording time inside training) and ``final_pass``.
    """
    shared = {**shared_seconds, **{k: v for k, v in own_seconds.items() if k == "final_pass"}}
    return {n: own_seconds.get(n, 0.0) + shared.get(PROXIES.get(n).cost_source, 0.0) for n in names}

"""The papers' findings (docs/methods.md §7) tested on the grids' seeds: effect, 95% CI, verdict.

Each claim is a difference between two groups of grid cells that share
everything but one factor (the forget set's memorization level, the
strategy, the score driving RUM), paired by seed: per seed the difference of
the two ToW values, then the mean and its t-based 95% CI over seeds
(``evaluation.stats.mean_ci``). Verdicts:

- "A beats B" claims: ``supported`` if the CI lies above 0, ``contradicted``
  if it lies below 0, else ``inconclusive``;
- "A is on par with B" claims: ``supported`` if the CI lies inside
  [−margin, margin], ``contradicted`` if it lies wholly outside, else
  ``inconclusive``;
- the cost claim is a measured ratio, not a seed statistic (no CI).

A claim whose cells are not in the grids says ``not run`` and names the
grid entries it needs. Pure functions on the tidy results table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import check_positive
from .stats import mean_ci

VERDICTS = ("supported", "contradicted", "inconclusive", "not run")
COLUMNS = ("claim", "finding", "comparison", "effect", "ci_low", "ci_high", "n_seeds", "verdict")


@dataclass(frozen=True)
class ClaimsConfig:
    """Params section ``claims``."""

    method: str = "neggrad_plus"  # the grids' method whose cells are compared
    on_par_margin: float = 0.05  # ToW difference within which two RUM drivers count as on par
    cheaper_factor: float = 100.0  # "proxies are at least this many times cheaper than exact scores"
    metric: str = "tow"  # the compared metric (a results.csv column)

    def validate(self) -> None:
        check_positive(self.on_par_margin, "claims.on_par_margin")
        check_positive(self.cheaper_factor, "claims.cheaper_factor")


def _cells(results: pd.DataFrame, metric: str, **where: Any) -> pd.Series:
    """``metric`` by seed of the cells matching ``where`` (grid, method, group_score, kind, strategy)."""
    mask = np.ones(len(results), dtype=bool)
    for key, value in where.items():
        mask &= (results[key] == value).to_numpy()
    return results.loc[mask].set_index("seed")[metric]


def _describe(where: Mapping[str, Any]) -> str:
    return "/".join(str(where[k]) for k in ("grid", "group_score", "kind", "strategy"))


def paired_difference(results: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], metric: str = "tow"):
    """(mean, ci_low, ci_high, n) of metric(a) − metric(b) over the seeds both have; n = 0 if none."""
    left, right = _cells(results, metric, **a), _cells(results, metric, **b)
    seeds = left.index.intersection(right.index)
    if len(seeds) == 0:
        return math.nan, math.nan, math.nan, 0
    mean, half, n = mean_ci((left.loc[seeds] - right.loc[seeds]).to_numpy(dtype=np.float64))
    return mean, mean - half, mean + half, n


def greater_verdict(low: float, high: float, n: int) -> str:
    if n == 0:
        return "not run"
    if n < 2 or not np.isfinite([low, high]).all():
        return "inconclusive"
    return "supported" if low > 0 else "contradicted" if high < 0 else "inconclusive"


def on_par_verdict(low: float, high: float, n: int, margin: float) -> str:
    if n == 0:
        return "not run"
    if n < 2 or not np.isfinite([low, high]).all():
        return "inconclusive"
    if -margin <= low and high <= margin:
        return "supported"
    return "contradicted" if low > margin or high < -margin else "inconclusive"


def _row(claim: str, finding: str, a: Mapping[str, Any], b: Mapping[str, Any], stats: tuple, verdict: str,
         metric: str) -> dict[str, Any]:
    mean, low, high, n = stats
    return {"claim": claim, "finding": finding, "comparison": f"{metric}[{_describe(a)}] - {metric}[{_describe(b)}]",
            "effect": mean, "ci_low": low, "ci_high": high, "n_seeds": n, "verdict": verdict}


def evaluate_claims(results: pd.DataFrame, proxy_cost: Mapping[str, float], cfg: ClaimsConfig,
                rum_scores: tuple[str, ...] = (), exact_score: str = "exact_prob") -> pd.DataFrame:
    """One row per claim (COLUMNS). ``results``: the grids' tidy table;
    ``proxy_cost``: times cheaper than exact, by proxy; ``rum_scores``: proxies that drove RUM (grid
    ``rum_compare``); ``exact_score``: the exact score of the ``ablations`` and ``levels`` grids."""
    m, metric = cfg.method, cfg.metric
    ablations = {"grid": "ablations", "method": m, "group_score": exact_score}
    levels = {**ablations, "grid": "levels"}
    rows = []

    def greater(claim, finding, a, b):
        stats = paired_difference(results, a, b, metric)
        rows.append(_row(claim, finding, a, b, stats, greater_verdict(*stats[1:]), metric))

    greater("high_memorization_is_harder", "forget sets of highly memorized examples are harder than of "
            "weakly memorized ones (vanilla)", {**levels, "kind": "low", "strategy": "vanilla"},
            {**levels, "kind": "high", "strategy": "vanilla"})
    for control, name in (("vanilla", "rum_beats_vanilla"), ("vanilla_budget", "rum_beats_budget_matched_vanilla"),
                          ("shuffle", "rum_beats_shuffle")):
        greater(name, f"RUM (rum_f, low -> mid -> high) beats {control} on a mixed forget set",
                {**ablations, "kind": "mix", "strategy": "rum_f"}, {**ablations, "kind": "mix", "strategy": control})
    for proxy in rum_scores:
        own = {"grid": "rum_compare", "method": m, "group_score": proxy, "kind": "mix"}
        a, b = {**own, "strategy": "rum_f"}, {**ablations, "kind": "mix", "strategy": "rum_f"}
        stats = paired_difference(results, a, b, metric)
        rows.append(_row(f"rum_{proxy}_on_par_with_exact", f"RUM driven by the {proxy} proxy is on par with RUM "
                         f"driven by exact scores (margin {cfg.on_par_margin}; each on its own score's forget set "
                         f"and oracle)", a, b, stats, on_par_verdict(*stats[1:], cfg.on_par_margin), metric))
        greater(f"rum_{proxy}_beats_shuffle", f"RUM driven by {proxy} beats the shuffle control",
                {**own, "strategy": "rum_f"}, {**own, "strategy": "shuffle"})
    for proxy, factor in proxy_cost.items():
        verdict = "supported" if factor >= cfg.cheaper_factor else "contradicted"
        rows.append({"claim": f"{proxy}_is_{cfg.cheaper_factor:g}x_cheaper", "finding": f"the {proxy} proxy costs "
                     f"at least {cfg.cheaper_factor:g}x less than exact scores", "comparison":
                     "exact compute seconds / proxy seconds", "effect": factor, "ci_low": math.nan,
                     "ci_high": math.nan, "n_seeds": 0, "verdict": verdict if np.isfinite(factor) else "not run"})
    ent = {"grid": "entanglement", "method": m, "group_score": "entanglement", "strategy": "vanilla"}
    greater("entangled_is_harder", "forget sets entangled with the retain set are harder than weakly entangled "
            "ones (vanilla)", {**ent, "kind": "low"}, {**ent, "kind": "high"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def claims_markdown(table: pd.DataFrame, cfg: ClaimsConfig) -> str:
    """A readable report: one line per claim with its verdict, effect and CI."""
    return claims_report(
        f"Metric: {cfg.metric} (higher = closer to the retrain oracle), method {cfg.method}; effect = mean paired "
        "difference over seeds, 95% t-based CI. A positive effect supports a 'beats' or 'harder' claim (the harder "
        "forget set has the lower ToW).", table)


def claims_report(intro: str, table: pd.DataFrame, label=lambda row: row["finding"]) -> str:
    """``results/claims.md`` of any modality: ``intro``, then one line per claim (``label(row)``) with its
    verdict, effect (a cost factor, which has no seeds, as ``<n>x``), 95% CI, seeds and comparison."""
    lines = ["# Claims tested on this run", "", intro, "",
             "| claim | verdict | effect | 95% CI | seeds | comparison |", "|---|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        ci = "" if not np.isfinite([row["ci_low"], row["ci_high"]]).all() else \
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
        effect = "" if not np.isfinite(row["effect"]) else f"{row['effect']:+.3f}" if row["n_seeds"] else \
            f"{row['effect']:.0f}x"
        lines.append(f"| {label(row)} | **{row['verdict']}** | {effect} | {ci} | {row['n_seeds']} | "
                     f"`{row['comparison']}` |")
    return "\n".join(lines) + "\n"


"""The papers' findings (docs/methods.md §7) tested on the grids' seeds: effect, 95% CI, verdict.

Each claim is a difference between two groups of grid cells (arms) that share everything but one factor (the
forget set's memorization level, the strategy, the score driving RUM), paired by seed: per seed the difference
of the two ToW values, then the mean and its t-based 95% CI over seeds (``evaluation.stats.mean_ci``). Verdicts:

- "A beats B" claims: ``supported`` if the CI lies above 0, ``contradicted`` if it lies below 0, else
  ``inconclusive``;
- "A is on par with B" claims are non-inferiority tests (the papers claim "not worse"): ``supported`` if the
  CI's lower bound lies above −margin (``claims.on_par_margin``), ``contradicted`` if its upper bound lies
  below −margin, else ``inconclusive``; A scoring better than B supports it;
- "A is cheaper than retraining": per seed the ratio of the retrain oracle's seconds to the arm's, its mean
  and CI; ``supported`` if the CI lies above 1, ``contradicted`` if below. A cell loaded from a cache reports
  the seconds of its first run (experiments/cell.py);
- the proxies' cost claim is a measured ratio of the proxy study, not a seed statistic (no CI).

Every row also gives each arm's mean metric and seconds over the paired seeds (``metric_a``, ``seconds_a``,
``metric_b``, ``seconds_b``). A claim whose cells are not in the grids says ``not run`` and ``needs`` names
the grid entries it needs. ``covers`` names the sources of randomness a row's interval spans: what the grid
seeds drive (``COVERS``: with ``originals: per_seed`` also the original model and its memorization scores), or
what a row without seeds is. Pure functions on the tidy results table.
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
COLUMNS = ("claim", "finding", "comparison", "effect", "ci_low", "ci_high", "n_seeds", "verdict", "covers")
ARM_COLUMNS = ("metric_a", "seconds_a", "metric_b", "seconds_b", "needs")  # after COLUMNS
GRID_ORDER = ("ablations", "rum_compare", "levels", "entanglement")  # where a proxy's RUM cells are looked for
# What a grid seed drives (experiments/grids.py), by the grid's ``originals`` (grid.py ORIGINALS): the retrain
# oracle's init and data order, the unlearning's draws, the forget set's tie-breaks and the MIA subsample; per_seed
# also trains each seed its own original model and memorization scores (so its forget sets and proxies' scores)
SEED_DRIVEN = "oracle, unlearning, tie-breaks, MIA subsample"
COVERS = {"shared": SEED_DRIVEN, "per_seed": f"original, scores, {SEED_DRIVEN}"}
MEASURED = "one measurement of the proxy study (no seeds, no interval)"  # covers of a proxy cost row
TUNED_GRID = "tuned"  # grid.TUNED, named here so the claims stage does not depend on the grids' code
RUM_CONTROLS = (("vanilla", "vanilla"), ("vanilla_budget", "budget_matched_vanilla"), ("shuffle", "shuffle"))


@dataclass(frozen=True)
class ClaimsConfig:
    """Params section ``claims``."""

    method: str = "neggrad_plus"  # the grids' method whose cells are compared
    on_par_margin: float = 0.05  # non-inferiority margin: "on par" = no more than this much worse in ToW
    cheaper_factor: float = 100.0  # "proxies are at least this many times cheaper than exact scores"
    metric: str = "tow"  # the compared metric (a results.csv column)

    def validate(self) -> None:
        check_positive(self.on_par_margin, "claims.on_par_margin")
        check_positive(self.cheaper_factor, "claims.cheaper_factor")


def arm(results: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    """The cells matching ``where`` (grid, method, group_score, kind, strategy), indexed by seed."""
    mask = np.ones(len(results), dtype=bool)
    for key, value in where.items():
        mask &= (results[key] == value).to_numpy()
    return results.loc[mask].set_index("seed")


def _describe(where: Mapping[str, Any]) -> str:
    return "/".join(str(where[k]) for k in ("grid", "group_score", "kind", "strategy"))


def _seconds(cells: pd.DataFrame, column: str = "seconds") -> float:
    return float(cells[column].mean()) if column in cells and len(cells) else math.nan


def paired_difference(results: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], metric: str = "tow"):
    """(mean, ci_low, ci_high, n) of metric(a) − metric(b) over the seeds both have; n = 0 if none."""
    return _paired(results, a, b, metric)[0]


def _paired(results: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], metric: str):
    """(paired_difference's tuple, {metric_a, seconds_a, metric_b, seconds_b} over the paired seeds)."""
    left, right = arm(results, a), arm(results, b)
    seeds = left.index.intersection(right.index)
    left, right = left.loc[seeds], right.loc[seeds]
    arms = {"metric_a": float(left[metric].mean()) if len(seeds) else math.nan, "seconds_a": _seconds(left),
            "metric_b": float(right[metric].mean()) if len(seeds) else math.nan, "seconds_b": _seconds(right)}
    if len(seeds) == 0:
        return (math.nan, math.nan, math.nan, 0), arms
    mean, half, n = mean_ci((left[metric] - right[metric]).to_numpy(dtype=np.float64))
    return (mean, mean - half, mean + half, n), arms


def greater_verdict(low: float, high: float, n: int, threshold: float = 0.0) -> str:
    """``supported`` if the CI lies above ``threshold``, ``contradicted`` if below, else ``inconclusive``."""
    if n == 0:
        return "not run"
    if n < 2 or not np.isfinite([low, high]).all():
        return "inconclusive"
    return "supported" if low > threshold else "contradicted" if high < threshold else "inconclusive"


def noninferior_verdict(low: float, high: float, n: int, margin: float) -> str:
    """A is no worse than B by more than ``margin``: the CI of A − B lies above −margin (one-sided)."""
    return greater_verdict(low, high, n, threshold=-margin)


def same_forget_set(results: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Do the cells ``a`` and ``b`` share each seed's forget set (equal ``forget_digest``; then also its retrain
    oracle, which the oracle cache keys by R and seed)? None if they share no seed or the table has no
    digests."""
    left, right = arm(results, a), arm(results, b)
    seeds = left.index.intersection(right.index)
    if len(seeds) == 0 or "forget_digest" not in results:
        return None
    same = left.loc[seeds, "forget_digest"] == right.loc[seeds, "forget_digest"]
    return bool(same.all()) if same.all() or not same.any() else None


def covers(results: pd.DataFrame, *wheres: Mapping[str, Any]) -> str:
    """The randomness an interval over the cells ``wheres`` covers: ``COVERS`` of their grids' ``originals``
    (per_seed only if every arm's cells had their own originals; a table without the column: shared)."""
    modes = {str(mode) for where in wheres
             for mode in (arm(results, where).get("originals", pd.Series(["shared"])).fillna("shared"))}
    return COVERS["per_seed"] if modes == {"per_seed"} else COVERS["shared"]


def _row(claim: str, finding: str, a: Mapping[str, Any], b: Mapping[str, Any], paired: tuple, verdict: str,
         metric: str, needs: str = "", results: pd.DataFrame | None = None) -> dict[str, Any]:
    (mean, low, high, n), arms = paired
    return {"claim": claim, "finding": finding, "comparison": f"{metric}[{_describe(a)}] - {metric}[{_describe(b)}]",
            "effect": mean, "ci_low": low, "ci_high": high, "n_seeds": n, "verdict": verdict,
            "covers": COVERS["shared"] if results is None else covers(results, a, b), **arms,
            "needs": needs if verdict == "not run" else ""}


def cheaper_than_retraining(results: pd.DataFrame, where: Mapping[str, Any], metric: str = "tow") -> dict[str, Any]:
    """The claim that the arm ``where`` costs less than retraining: per seed oracle_seconds / seconds, its mean
    and CI (arm a: the cells; arm b: their retrain oracles)."""
    cells = arm(results, where)
    timed = {"seconds", "oracle_seconds"} <= set(cells.columns) and len(cells) > 0
    ratio = (cells["oracle_seconds"] / cells["seconds"]).to_numpy(np.float64) if timed else np.array([])
    mean, half, n = mean_ci(ratio[np.isfinite(ratio)])  # a 0-second cell says nothing about cost
    low, high = mean - half, mean + half
    oracle_metric = f"oracle_{metric}"
    return {"claim": f"{where['method']}_{where['strategy']}_cheaper_than_retraining",
            "finding": f"{where['method']} with {where['strategy']} takes less time than retraining on R (a cell "
                       "loaded from a cache reports its first run's seconds)",
            "comparison": f"oracle_seconds / seconds[{_describe(where)}]", "effect": mean, "ci_low": low,
            "ci_high": high, "n_seeds": n, "verdict": greater_verdict(low, high, n, threshold=1.0),
            "covers": covers(results, where),
            "metric_a": float(cells[metric].mean()) if len(cells) else math.nan, "seconds_a": _seconds(cells),
            "metric_b": float(cells[oracle_metric].mean()) if oracle_metric in cells and len(cells) else math.nan,
            "seconds_b": _seconds(cells, "oracle_seconds"),
            "needs": "" if n else f"the grid cells {_describe(where)} with seconds and oracle_seconds"}


def _proxy_grids(results: pd.DataFrame, proxy: str, exact_rum: Mapping[str, Any], method: str) -> dict[bool, str]:
    """{True: the first grid whose rum_f cells driven by ``proxy`` share exact RUM's forget sets, False: the first
    whose cells have their own}; GRID_ORDER first, then any other grid of the table."""
    found: dict[bool, str] = {}
    grids = list(GRID_ORDER) + sorted(set(results["grid"]) - set(GRID_ORDER))
    for grid in grids:
        cells = {"grid": grid, "method": method, "group_score": proxy, "kind": "mix", "strategy": "rum_f"}
        same = same_forget_set(results, cells, exact_rum)
        if same is not None:
            found.setdefault(same, grid)
    return found


NOT_RUN = ((math.nan, math.nan, math.nan, 0), {"metric_a": math.nan, "seconds_a": math.nan, "metric_b": math.nan,
                                                "seconds_b": math.nan})


def evaluate_claims(results: pd.DataFrame, proxy_cost: Mapping[str, float], cfg: ClaimsConfig,
                    rum_scores: tuple[str, ...] = (), exact_score: str = "exact_prob") -> pd.DataFrame:
    """One row per claim (COLUMNS, then ARM_COLUMNS). ``results``: the grids' tidy table; ``proxy_cost``: times
    cheaper than exact, by proxy; ``rum_scores``: proxies that drove RUM (grid ``rum_compare``);
    ``exact_score``: the exact score of the ``ablations`` and ``levels`` grids."""
    m, metric, margin = cfg.method, cfg.metric, cfg.on_par_margin
    ablations = {"grid": "ablations", "method": m, "group_score": exact_score}
    levels = {**ablations, "grid": "levels"}
    exact_rum = {**ablations, "kind": "mix", "strategy": "rum_f"}
    rows = []

    def greater(claim, finding, a, b, needs="", valid=True):
        paired = _paired(results, a, b, metric) if valid else NOT_RUN
        rows.append(_row(claim, finding, a, b, paired, greater_verdict(*paired[0][1:]), metric, needs, results))

    greater("high_memorization_is_harder", "forget sets of highly memorized examples are harder than of "
            "weakly memorized ones (vanilla)", {**levels, "kind": "low", "strategy": "vanilla"},
            {**levels, "kind": "high", "strategy": "vanilla"}, "levels.kinds: [low, high], strategies: [vanilla]")
    clean = [{**levels, "grid": "levels_clean", "kind": kind, "strategy": "vanilla"} for kind in ("low", "high")]
    greater("high_memorization_is_harder_clean", "the same on forget sets without planted label noise: high "
            "memorization, not mislabeling, makes a forget set harder (vanilla)", *clean,
            "levels_clean.kinds: [low, high], strategies: [vanilla], partition.exclude_planted_noise: true",
            valid=all(_clean(results, where) for where in clean))
    for control, name in RUM_CONTROLS:
        greater(f"rum_beats_{name}", f"RUM (rum_f, low -> mid -> high) beats {control} on a mixed forget set",
                exact_rum, {**ablations, "kind": "mix", "strategy": control}, f"ablations.kinds: [mix], strategies: "
                f"[rum_f, {control}]")
    for proxy in (p for p in rum_scores if p != exact_score):
        grids = _proxy_grids(results, proxy, exact_rum, m)
        for same, suffix, where, needs in (
                (True, "", f"on the same forget set ({exact_score}'s mix set, refined by {proxy}) and retrain oracle",
                 f"rum_compare.fixed_group_score: {exact_score} (then {proxy} refines {exact_score}'s mix forget "
                 "set; its oracle loads from the cache)"),
                (False, "_across_forget_sets", "each on its own score's mix forget set and oracle, paired by seed "
                 "only", "rum_compare.fixed_group_score: '' (each proxy's own mix forget "
                 "set and oracle)")):
            a = {"grid": grids.get(same, "rum_compare"), "method": m, "group_score": proxy, "kind": "mix",
                 "strategy": "rum_f"}
            paired = _paired(results, a, exact_rum, metric) if same in grids else NOT_RUN
            rows.append(_row(f"rum_{proxy}_on_par_with_exact{suffix}", f"RUM driven by the {proxy} proxy is on "
                             f"par with RUM driven by exact scores: no more than {margin:g} worse, {where}", a,
                             exact_rum, paired, noninferior_verdict(*paired[0][1:], margin), metric, needs,
                             results))
        own = {"grid": grids.get(True, grids.get(False, "rum_compare")), "method": m, "group_score": proxy,
               "kind": "mix"}
        greater(f"rum_{proxy}_beats_shuffle", f"RUM driven by {proxy} beats the shuffle control",
                {**own, "strategy": "rum_f"}, {**own, "strategy": "shuffle"},
                f"{own['grid']}.strategies: [shuffle, rum_f]")
    for proxy, factor in proxy_cost.items():
        verdict = "supported" if factor >= cfg.cheaper_factor else "contradicted"
        rows.append({"claim": f"{proxy}_is_{cfg.cheaper_factor:g}x_cheaper", "finding": f"the {proxy} proxy costs "
                     f"at least {cfg.cheaper_factor:g}x less than exact scores", "comparison":
                     "exact compute seconds / proxy seconds", "effect": factor, "ci_low": math.nan,
                     "ci_high": math.nan, "n_seeds": 0, "verdict": verdict if np.isfinite(factor) else "not run",
                     "covers": MEASURED,
                     **NOT_RUN[1], "needs": "" if np.isfinite(factor) else "the proxy study's cost of " + proxy})
    ent = {"grid": "entanglement", "method": m, "group_score": "entanglement", "strategy": "vanilla"}
    greater("entangled_is_harder", "forget sets entangled with the retain set are harder than weakly entangled "
            "ones (vanilla)", {**ent, "kind": "low"}, {**ent, "kind": "high"},
            "entanglement.kinds: [low, high], strategies: [vanilla]")
    rows.extend(cheaper_than_retraining(results, where, metric) for where in _timed_arms(results, ablations, m))
    _tuned_claims(results, exact_score, m, greater)
    return pd.DataFrame(rows, columns=list(COLUMNS + ARM_COLUMNS))


def _clean(results: pd.DataFrame, where: Mapping[str, Any]) -> bool:
    """Do the cells ``where`` exist with no planted-noise example in any forget set (``planted_noise_in_forget``)?"""
    cells = arm(results, where)
    return len(cells) > 0 and "planted_noise_in_forget" in cells and bool((cells["planted_noise_in_forget"] == 0).all())
def _tuned_claims(results: pd.DataFrame, exact_score: str, method: str, greater) -> None:
    """The tuned grid's claims (stage tune): per base method, RUM^F beats each control, every arm at its own tuned
    values; full RUM (strategy rum, its per-subset methods) beats each method's tuned vanilla. Rows for the
    claims' ``method`` say ``not run`` where the table has no tuned grid."""
    tuned = {"grid": TUNED_GRID, "group_score": exact_score, "kind": "mix"}
    cells = arm(results, tuned)
    methods = list(dict.fromkeys(cells["method"])) or [method]
    full = cells.loc[cells["strategy"] == "rum", "method"]
    full_rum = {**tuned, "method": full.iloc[0] if len(full) else method, "strategy": "rum"}
    needs = f"{TUNED_GRID}.strategies: [vanilla, vanilla_budget, shuffle, rum_f, rum] and the tune stage's values"
    for name in methods:
        for control, label in RUM_CONTROLS:
            greater(f"tuned_rum_beats_{label}_{name}", f"RUM (rum_f) beats {control} with {name}, each at its own "
                    "tuned hyperparameters (stage tune: searched on the tuning seeds, tested on held-out ones)",
                    {**tuned, "method": name, "strategy": "rum_f"}, {**tuned, "method": name, "strategy": control},
                    needs)
    for name in methods:
        greater(f"tuned_full_rum_beats_vanilla_{name}", f"full RUM (a method per subset) beats vanilla {name}, "
                "each at its own tuned hyperparameters (stage tune)", full_rum,
                {**tuned, "method": name, "strategy": "vanilla"}, needs)


def _timed_arms(results: pd.DataFrame, ablations: Mapping[str, Any], method: str) -> list[dict[str, Any]]:
    """The compared arms whose cost the claims check: each (method, strategy) of the ablations grid's mixed
    forget sets of exact scores, in table order; ``method`` with rum_f if the grid has none."""
    mix = arm(results, {key: value for key, value in ablations.items() if key != "method"} | {"kind": "mix"})
    pairs = list(dict.fromkeys(zip(mix["method"], mix["strategy"]))) or [(method, "rum_f")]
    return [{**ablations, "method": name, "kind": "mix", "strategy": strategy} for name, strategy in pairs]


def claims_markdown(table: pd.DataFrame, cfg: ClaimsConfig) -> str:
    """A readable report: one line per claim with its verdict, effect and CI."""
    return claims_report(
        f"Metric: {cfg.metric} (higher = closer to the retrain oracle), method {cfg.method}; effect = mean paired "
        "difference over seeds, 95% t-based CI. A positive effect supports a 'beats' or 'harder' claim (the harder "
        f"forget set has the lower ToW); an 'on par' claim is one-sided (non-inferiority, margin "
        f"{cfg.on_par_margin:g}): supported if the CI's lower bound lies above -{cfg.on_par_margin:g}. A 'cheaper "
        "than retraining' claim's effect is the mean ratio of the oracle's seconds to the arm's (supported if the CI "
        "lies above 1); a cell loaded from a cache reports its first run's seconds. Each arm's mean metric and "
        "seconds are in results/claims.csv (metric_a, seconds_a, metric_b, seconds_b). 'covers': the sources of "
        "randomness the interval spans (the grid seeds drive the oracle, the unlearning, the forget set's "
        "tie-breaks and the MIA subsample; with a grid's originals: per_seed also the original model and its "
        "memorization scores).", table)


def claims_report(intro: str, table: pd.DataFrame, label=lambda row: row["finding"]) -> str:
    """``results/claims.md`` of any modality: ``intro``, then one line per claim (``label(row)``) with its
    verdict, effect (a cost factor, which has no seeds, as ``<n>x``), 95% CI, seeds, each arm's seconds where the
    table has them, what the interval covers, and the comparison (a claim not run: what it needs)."""
    timed = "seconds_a" in table.columns
    lines = ["# Claims tested on this run", "", intro, "",
             "| claim | verdict | effect | 95% CI | seeds |" + (" seconds (a / b) |" if timed else "")
             + " covers | comparison |", "|---|---|---|---|---|" + ("---|" if timed else "") + "---|---|"]
    for row in table.to_dict("records"):
        ci = "" if not np.isfinite([row["ci_low"], row["ci_high"]]).all() else \
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
        effect = "" if not np.isfinite(row["effect"]) else f"{row['effect']:+.3f}" if row["n_seeds"] else \
            f"{row['effect']:.0f}x"
        seconds = ""
        if timed and np.isfinite([row["seconds_a"], row["seconds_b"]]).all():
            seconds = f" {row['seconds_a']:.1f} / {row['seconds_b']:.1f} |"
        elif timed:
            seconds = "  |"
        comparison = f"`{row['comparison']}`" + (f"; needs `{row['needs']}`" if isinstance(row.get("needs"), str) and row["needs"] else "")
        lines.append(f"| {label(row)} | **{row['verdict']}** | {effect} | {ci} | {row['n_seeds']} |{seconds} "
                     f"{row['covers']} | {comparison} |")
    return "\n".join(lines) + "\n"

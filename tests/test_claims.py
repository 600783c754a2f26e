"""The claims report (evaluation/claims.py): paired differences over seeds, verdicts, missing cells."""
import math

import numpy as np
import pandas as pd
import pytest

from memunlearn.evaluation.claims import (COLUMNS, ClaimsConfig, claims_markdown, evaluate_claims, greater_verdict,
                                          on_par_verdict, paired_difference)

SEEDS = (0, 1, 2, 3)


def cells(grid, score, kind, strategy, tows):
    return [{"grid": grid, "method": "neggrad_plus", "group_score": score, "kind": kind, "strategy": strategy,
             "seed": s, "tow": t} for s, t in zip(SEEDS, tows)]


def results(rum_mix=(0.90, 0.91, 0.92, 0.93), proxy_mix=(0.89, 0.92, 0.91, 0.93)):
    """Grids where low is easier than high, RUM beats every control by 0.1-0.2 and the proxy is on par."""
    rows = (cells("levels", "exact_prob", "low", "vanilla", (0.95, 0.96, 0.94, 0.95))
            + cells("levels", "exact_prob", "high", "vanilla", (0.60, 0.65, 0.62, 0.61))
            + cells("ablations", "exact_prob", "mix", "rum_f", rum_mix)
            + cells("ablations", "exact_prob", "mix", "vanilla", (0.70, 0.72, 0.71, 0.69))
            + cells("ablations", "exact_prob", "mix", "vanilla_budget", (0.75, 0.76, 0.74, 0.77))
            + cells("ablations", "exact_prob", "mix", "shuffle", (0.80, 0.79, 0.81, 0.80))
            + cells("rum_compare", "confidence", "mix", "rum_f", proxy_mix)
            + cells("rum_compare", "confidence", "mix", "shuffle", (0.80, 0.81, 0.79, 0.80))
            + cells("entanglement", "entanglement", "low", "vanilla", (0.7, 0.72, 0.71, 0.7))
            + cells("entanglement", "entanglement", "high", "vanilla", (0.9, 0.91, 0.92, 0.9)))
    return pd.DataFrame(rows)


def test_paired_difference_is_the_mean_and_t_ci_of_per_seed_differences():
    table = results()
    mean, low, high, n = paired_difference(table, {"grid": "ablations", "kind": "mix", "strategy": "rum_f"},
                                           {"grid": "ablations", "kind": "mix", "strategy": "vanilla"})
    diffs = np.array([0.90, 0.91, 0.92, 0.93]) - np.array([0.70, 0.72, 0.71, 0.69])
    half = 3.182446305284263 * diffs.std(ddof=1) / 2  # t_{0.975, 3} * s / sqrt(4)
    assert n == 4 and mean == pytest.approx(diffs.mean())
    assert (low, high) == (pytest.approx(diffs.mean() - half), pytest.approx(diffs.mean() + half))


def test_verdicts_follow_the_interval():
    assert greater_verdict(0.01, 0.2, 3) == "supported"
    assert greater_verdict(-0.2, -0.01, 3) == "contradicted"
    assert greater_verdict(-0.01, 0.2, 3) == "inconclusive"
    assert greater_verdict(0.1, 0.1, 1) == "inconclusive"  # one seed: no interval
    assert greater_verdict(math.nan, math.nan, 0) == "not run"
    assert on_par_verdict(-0.03, 0.04, 3, 0.05) == "supported"
    assert on_par_verdict(0.06, 0.2, 3, 0.05) == "contradicted"
    assert on_par_verdict(-0.01, 0.2, 3, 0.05) == "inconclusive"


def test_every_claim_gets_its_verdict():
    table = evaluate_claims(results(), {"confidence": 500.0}, ClaimsConfig(), rum_scores=("confidence",))
    assert list(table.columns) == list(COLUMNS)
    verdicts = table.set_index("claim")["verdict"].to_dict()
    assert verdicts == {
        "high_memorization_is_harder": "supported", "rum_beats_vanilla": "supported",
        "rum_beats_budget_matched_vanilla": "supported", "rum_beats_shuffle": "supported",
        "rum_confidence_on_par_with_exact": "supported", "rum_confidence_beats_shuffle": "supported",
        "confidence_is_100x_cheaper": "supported",
        "entangled_is_harder": "contradicted",  # here high-ES sets came out easier: reported, not hidden
    }


def test_a_proxy_far_from_exact_is_not_on_par_and_a_slow_proxy_is_not_cheap():
    table = evaluate_claims(results(proxy_mix=(0.70, 0.71, 0.69, 0.70)), {"confidence": 20.0}, ClaimsConfig(),
                            rum_scores=("confidence",)).set_index("claim")
    assert table.loc["rum_confidence_on_par_with_exact", "verdict"] == "contradicted"
    assert table.loc["confidence_is_100x_cheaper", "verdict"] == "contradicted"


def test_claims_whose_cells_are_missing_say_not_run_and_the_report_is_readable():
    table = evaluate_claims(results().query("grid != 'entanglement'"), {}, ClaimsConfig())
    assert table.set_index("claim").loc["entangled_is_harder", "verdict"] == "not run"
    text = claims_markdown(table, ClaimsConfig())
    assert text.startswith("# Claims tested on this run") and "**supported**" in text and "**not run**" in text
    assert text.count("\n| ") == len(table) + 1  # header + one line per claim

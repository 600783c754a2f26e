"""Stage `claims`: each finding of the papers (docs/methods.md §7) tested on the grids' seeds.

Writes results/claims.csv (claim, finding, comparison, effect, ci_low,
ci_high, n_seeds, verdict), results/claims.md and metrics/claims.json.
"""
from _common import METRICS_DIR, RESULTS_DIR, flatten, load_params, stage, track
from _modality import elsewhere

import pandas as pd

from memunlearn.config import from_params
from memunlearn.evaluation.claims import ClaimsConfig, claims_markdown, evaluate_claims
from memunlearn.io import load_json, save_json, save_table
from memunlearn.modality.text import claims as text_stage
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("claims", "rum_compare", "sweep")
    if elsewhere(params, {"text": text_stage.run}):
        return
    config = from_params(ClaimsConfig, params["claims"], "claims")
    results = pd.read_csv(RESULTS_DIR / "sweep/results.csv")
    study = load_json(METRICS_DIR / "proxy_study.json", "proxy_study")
    proxies = tuple(params["rum_compare"].get("group_scores") or ())
    cost = {name: float(study[name]["times_cheaper_than_exact"]) for name in proxies if name in study}
    exact_score = (params["sweep"].get("group_scores") or ["exact_prob"])[0]
    table = evaluate_claims(results, cost, config, rum_scores=proxies, exact_score=exact_score)
    save_table(table, RESULTS_DIR / "claims.csv")
    (RESULTS_DIR / "claims.md").write_text(claims_markdown(table, config))
    metrics = {row["claim"]: {"effect": row["effect"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                              "verdict": row["verdict"]} for row in table.to_dict("records")}
    save_json(metrics, METRICS_DIR / "claims.json")
    track(StageRecord("claims", flatten(params), flatten({k: {n: v for n, v in m.items() if n != "verdict"}
                                                         for k, m in metrics.items()}),
                      artifacts=[RESULTS_DIR / "claims.csv", RESULTS_DIR / "claims.md"],
                      tags={f"verdict.{k}": m["verdict"] for k, m in metrics.items()}))


if __name__ == "__main__":
    main()

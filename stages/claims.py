"""Stage `claims`: each finding of the papers (docs/methods.md §7; on text, the first-epoch gradient ascent paper's findings 1, 2 and 4)
tested on the grids' seeds.

Writes results/claims.csv (claim, finding, comparison, effect, ci_low,
ci_high, n_seeds, verdict; on images then each arm's metric_a, seconds_a,
metric_b, seconds_b and what a claim not run needs), results/claims.md and
metrics/claims.json.
"""
from _common import METRICS_DIR, RESULTS_DIR, flatten, load_params, stage, track

from memunlearn.io import load_table, save_json, save_table
from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    params = load_params("modality", "claims", "rum_compare", "ablations")
    modality = load_modality(params["modality"])  # reads no prepared data
    results = load_table(RESULTS_DIR / "grids/results.csv", "grids_report")
    table, markdown = modality.claims(results, params, METRICS_DIR)
    save_table(table, RESULTS_DIR / "claims.csv")
    (RESULTS_DIR / "claims.md").write_text(markdown)
    words = ("verdict", "covers")  # text: MLflow tags, not metrics
    metrics = {row["claim"]: {"effect": row["effect"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                              **{word: row[word] for word in words}} for row in table.to_dict("records")}
    save_json(metrics, METRICS_DIR / "claims.json")
    track(StageRecord("claims", flatten(params), flatten({k: {n: v for n, v in m.items() if n not in words}
                                                         for k, m in metrics.items()}),
                      artifacts=[RESULTS_DIR / "claims.csv", RESULTS_DIR / "claims.md"],
                      tags={f"{word}.{k}": m[word] for k, m in metrics.items() for word in words}))


if __name__ == "__main__":
    main()

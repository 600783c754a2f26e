"""Stage `sweep_report`: the sweep's cells -> tidy table, mean ± t-based 95% CI per method x kind x strategy,
DVC metrics, and the ToW plot by method and memorization level (METHODS.md §6-7)."""
from _common import METRICS_DIR, RESULTS_DIR, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.evaluation.sweep import SweepConfig, plot_metric, results_table, summarize, summary_metrics
from memunlearn.io import load_json, save_json, save_table
from memunlearn.tracking import StageRecord

CELLS_DIR = RESULTS_DIR / "sweep/cells"  # dvc.yaml: every sweep_cell writes one JSON here
PLOTS_DIR = RESULTS_DIR / "plots/sweep"


@stage
def main() -> None:
    params = load_params("sweep")
    config = from_params(SweepConfig, params["sweep"], "sweep")
    cells = [load_json(path, "sweep_cell") for path in sorted(CELLS_DIR.glob("*.json"))]
    results = results_table(cells, config)
    summary = summarize(results)
    save_table(results, RESULTS_DIR / "sweep/results.csv")
    save_table(summary, RESULTS_DIR / "sweep/summary.csv")
    metrics = summary_metrics(summary)
    save_json(metrics, METRICS_DIR / "sweep.json")
    plot_metric(summary, PLOTS_DIR / "tow.png", "tow", config.kinds)
    plot_metric(summary, PLOTS_DIR / "tow_mia.png", "tow_mia", config.kinds, ylabel="ToW-MIA")
    track(StageRecord("sweep_report", flatten(params), flatten(metrics),
                      artifacts=[RESULTS_DIR / "sweep/results.csv", RESULTS_DIR / "sweep/summary.csv", PLOTS_DIR]))


if __name__ == "__main__":
    main()

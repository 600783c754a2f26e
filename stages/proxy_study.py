"""Stage `proxy_study`: how well and how cheaply each proxy stands in for exact memorization (the planted
examples: image label noise, text canaries)."""
from _common import MEMORIZE_DIR, METRICS_DIR, PREPARED, PROXIES_DIR, RESULTS_DIR, flatten, load_params, stage, track

from memunlearn.config import from_params
from memunlearn.io import load_json, load_table, save_json, save_table
from memunlearn.memorization.proxies import ProxyConfig
from memunlearn.memorization.study import SPLIT_HALF_KEYS, plot_proxy_vs_exact, proxy_study
from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord

PLOTS = RESULTS_DIR / "plots" / "proxy_vs_exact"


@stage
def main() -> None:
    params = load_params("modality", "proxies")
    modality = load_modality(params["modality"], PREPARED)
    top_n = from_params(ProxyConfig, params["proxies"], "proxies").top_n
    proxies = load_table(PROXIES_DIR / "proxies.parquet", "proxies")
    exact = load_table(MEMORIZE_DIR / "scores.parquet", "memorize").set_index("example_id")
    planted = modality.load(PREPARED).planted
    proxy_seconds = load_json(PROXIES_DIR / "cost.json", "proxies")["seconds"]
    memorize = load_json(METRICS_DIR / "memorize.json", "memorize")
    split_halves = {score: memorize.get(key) for score, key in SPLIT_HALF_KEYS.items()}

    table = proxy_study(proxies, exact, planted, proxy_seconds, memorize["compute_seconds"], top_n, split_halves)
    save_table(table, RESULTS_DIR / "proxy_study.csv")
    plot_proxy_vs_exact(proxies, exact["mem_prob"], PLOTS, planted)
    metrics = {row.pop("proxy"): row for row in table.to_dict("records")}
    metrics["exact_seconds"] = memorize["compute_seconds"]
    save_json(metrics, METRICS_DIR / "proxy_study.json")
    track(StageRecord("proxy_study", flatten(params), flatten(metrics),
                      artifacts=[RESULTS_DIR / "proxy_study.csv", PLOTS]))


if __name__ == "__main__":
    main()

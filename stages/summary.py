"""Stage `summary`: the run's headline numbers in metrics/summary.json (src/memunlearn/headline.py)."""
from _common import METRICS_DIR, stage, track

from memunlearn.headline import headline
from memunlearn.io import load_json, save_json
from memunlearn.tracking import StageRecord


@stage
def main() -> None:
    metrics = headline(load_json(METRICS_DIR / "evaluate.json", "evaluate"),
                       load_json(METRICS_DIR / "memorize.json", "memorize"))
    save_json(metrics, METRICS_DIR / "summary.json")
    track(StageRecord("summary", {}, metrics))


if __name__ == "__main__":
    main()

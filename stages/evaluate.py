"""Stage `evaluate`: FA/RA/TA, per-subset accuracy, MIA, ToW against the retrain oracle (docs/methods.md §6); on
text with next-token accuracy in place of label accuracy, perplexity and canary exposure beside them."""
from _common import (METRICS_DIR, ORACLE_DIR, PARTITION_DIR, PREPARED, RESULTS_DIR, TRAIN_DIR, UNLEARN_DIR,
                     device, flatten, load_params, stage, track)

from memunlearn.config import from_params
from memunlearn.evaluation import EvaluateConfig, compare
from memunlearn.io import load_json, load_table, save_json, save_table
from memunlearn.forgotten import without_forgotten
from memunlearn.modality import load_modality
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord

MODELS = {  # row name -> (checkpoint, stage that makes it)
    "original": (TRAIN_DIR / "model.pt", "train"),
    "unlearned": (UNLEARN_DIR / "model.pt", "unlearn"),
    "retrain": (ORACLE_DIR / "model.pt", "oracle"),
}


@stage
def main() -> None:
    params = load_params("modality", "evaluate")
    modality = load_modality(params["modality"], PREPARED)
    config = from_params(EvaluateConfig, params["evaluate"], "evaluate")
    data = without_forgotten(modality.load(PREPARED))
    parts = apply_partition(data.train, load_table(PARTITION_DIR / "forget.csv", "partition"))
    dev = device(config.device)
    rows = {name: modality.model_metrics(modality.load_model(path, stage_name)[0], data, parts, config, dev)
            for name, (path, stage_name) in MODELS.items()}

    table = compare(rows, oracle_key="retrain")
    seconds = {"unlearned": load_json(METRICS_DIR / "unlearn.json", "unlearn")["seconds"],
               "retrain": load_json(METRICS_DIR / "oracle.json", "oracle")["seconds"]}
    table["seconds"] = table["model"].map(seconds)
    save_table(table, RESULTS_DIR / "evaluation.csv")

    metrics = {row["model"]: {k: v for k, v in row.items() if k != "model"} for row in table.to_dict("records")}
    save_json(metrics, METRICS_DIR / "evaluate.json")
    track(StageRecord("evaluate", flatten(params), flatten(metrics), artifacts=[RESULTS_DIR / "evaluation.csv"],
                      datasets={"F": modality.dataset_view(parts.forget, data),
                                "R": modality.dataset_view(parts.retain, data),
                                "T": modality.dataset_view(data.test, data)}))


if __name__ == "__main__":
    main()

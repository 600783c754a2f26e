"""Stage `evaluate`: FA/RA/TA, per-subset accuracy, MIA, ToW against the retrain oracle (docs/methods.md §6)."""
from _common import (METRICS_DIR, ORACLE_DIR, PARTITION_DIR, PREPARED, RESULTS_DIR, TRAIN_DIR, UNLEARN_DIR,
                     device, flatten, load_params, stage, track)
from _modality import elsewhere

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.evaluation import EvaluateConfig, score_against_oracle
from memunlearn.io import load_json, load_table, save_json, save_table
from memunlearn.modality.text import evaluate as text_stage
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training import load_checkpoint

MODELS = {  # row name -> (checkpoint, stage that makes it)
    "original": (TRAIN_DIR / "model.pt", "train"),
    "unlearned": (UNLEARN_DIR / "model.pt", "unlearn"),
    "retrain": (ORACLE_DIR / "model.pt", "oracle"),
}


@stage
def main() -> None:
    params = load_params("evaluate")
    if elsewhere(params, {"text": text_stage.run}):
        return
    config = from_params(EvaluateConfig, params["evaluate"], "evaluate")
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(PARTITION_DIR / "forget.csv", "partition"))
    test = load_split(PREPARED / "test.npz")
    models = {name: load_checkpoint(path, stage_name)[0] for name, (path, stage_name) in MODELS.items()}

    table = score_against_oracle(models, parts.forget, parts.retain, test, parts.subsets, info, config,
                                 device(config.device), oracle="retrain")
    seconds = {"unlearned": load_json(METRICS_DIR / "unlearn.json", "unlearn")["seconds"],
               "retrain": load_json(METRICS_DIR / "oracle.json", "oracle")["seconds"]}
    table["seconds"] = table["model"].map(seconds)
    save_table(table, RESULTS_DIR / "evaluation.csv")

    metrics = {row["model"]: {k: v for k, v in row.items() if k != "model"} for row in table.to_dict("records")}
    save_json(metrics, METRICS_DIR / "evaluate.json")
    track(StageRecord("evaluate", flatten(params), flatten(metrics), artifacts=[RESULTS_DIR / "evaluation.csv"],
                      datasets={"F": parts.forget, "R": parts.retain, "T": test}))


if __name__ == "__main__":
    main()

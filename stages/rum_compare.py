"""Stage `rum_compare`: RUM refined by exact scores vs by each proxy vs vanilla, ToW side by side."""
from _common import (MEMORIZE_DIR, METRICS_DIR, ORACLE_DIR, PARTITION_DIR, PREPARED, PROXIES_DIR, RESULTS_DIR,
                     TRAIN_DIR, device, flatten, load_params, stage, track, unlearn_context)

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.evaluation import EvaluateConfig
from memunlearn.evaluation.rum_compare import RumCompareConfig, compare_refinements, variants
from memunlearn.io import load_table, save_json, save_table
from memunlearn.partition import lookup_score
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint
from memunlearn.unlearning import UnlearnPlan


@stage
def main() -> None:
    params = load_params("train", "rum_compare", "methods", "evaluate")
    config = from_params(RumCompareConfig, params["rum_compare"], "rum_compare")
    recipe = from_params(TrainConfig, params["train"], "train")
    eval_config = from_params(EvaluateConfig, params["evaluate"], "evaluate")
    plan = UnlearnPlan(config.method, params["methods"])
    exact = load_table(MEMORIZE_DIR / "scores.parquet", "memorize")
    proxies = load_table(PROXIES_DIR / "proxies.parquet", "proxies")
    scores = {name: lookup_score(name, exact, proxies) for name in config.scores}
    forget_ids = load_table(PARTITION_DIR / "forget.csv", "partition")["example_id"].to_numpy()
    info = load_info(PREPARED / "meta.json")
    dev = device(config.device)
    test = load_split(PREPARED / "test.npz")

    table = compare_refinements(
        original=load_checkpoint(TRAIN_DIR / "model.pt", "train")[0],
        train=load_split(PREPARED / "train.npz"),
        test=test,
        oracle=load_checkpoint(ORACLE_DIR / "model.pt", "oracle")[0],
        runs=variants(forget_ids, scores, config.include_vanilla),
        plan=plan,
        ctx=unlearn_context(info, recipe, dev, config.seed, test),
        eval_config=eval_config,
        device=dev,
    )
    save_table(table, RESULTS_DIR / "rum_compare.csv")
    metrics = {row.pop("variant"): {k: v for k, v in row.items() if k != "method"} for row in table.to_dict("records")}
    save_json(metrics, METRICS_DIR / "rum_compare.json")
    track(StageRecord("rum_compare", flatten(params), flatten(metrics), artifacts=[RESULTS_DIR / "rum_compare.csv"]))


if __name__ == "__main__":
    main()

from pathlib import Path

import pytest
import yaml

from memunlearn.cli import main
from memunlearn.params import SECTIONS, check_params
from memunlearn.unlearning import METHODS

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def test_list_prints_every_registry(capsys):
    main(["list"])
    out = capsys.readouterr().out
    for heading in ("datasets", "models", "proxies", "unlearning methods", "strategies"):
        assert heading in out
    for name in METHODS.names() + ["mnist_embedded", "small_cnn", "confidence", "rum"]:
        assert f"  {name}" in out


def check(tmp_path, capsys, **changes) -> tuple[int, list[str], str]:
    """``memunlearn check`` on params.yaml with ``changes`` ({"unlearn.strategy": "nope"}): exit code,
    problem lines (stderr), stdout."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        block = params
        for part in parents:
            block = block[part]
        block[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(path)])
    captured = capsys.readouterr()
    return exit_.value.code, captured.err.splitlines(), captured.out


def test_the_real_params_pass_check(capsys):
    assert check_params(yaml.safe_load(PARAMS_FILE.read_text())) == []
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(PARAMS_FILE)])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "OK" in out


def test_a_typo_fails_check_in_one_line_naming_the_key(tmp_path, capsys):
    code, err, out = check(tmp_path, capsys, **{"unlearn.strategy": "nope"})
    assert code == 1 and not out
    assert err[0].startswith("unlearn.strategy: unknown RUM strategy 'nope'; choose one of: rum, ")
    assert len(err) == 2 and "1 problem" in err[1]


def test_check_reports_every_problem_at_once(tmp_path, capsys):
    code, err, _ = check(tmp_path, capsys, **{
        "train.epochs": True, "train.lr_milestones": [10, "x"], "methods.salun.lrr": 0.1,
        "ablations.kinds": ["low", "huge"], "partition.group_score": "exact_prb", "data.colour": "red",
        "rum_compare.methods": ["scrub", "scrubb"], "oracle.seed": "0"})
    assert code == 1
    problems = err[:-1]
    for start in ("train.epochs: got true", 'train.lr_milestones[1]: got "x"', "methods.salun.lrr: unknown key",
                  "ablations.kinds[1]: unknown forget-set kind 'huge'", "partition.group_score: unknown score 'exact_prb'",
                  "data.colour: unknown key", "rum_compare.methods: 'scrubb' has no methods.scrubb block",
                  'oracle.seed: got "0"; write an integer'):
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    assert err[-1].endswith(f"{len(problems)} problem(s); fix them before `dvc repro`")


def test_check_names_missing_and_unknown_sections(tmp_path, capsys):
    params = yaml.safe_load(PARAMS_FILE.read_text())
    del params["oracle"]
    params["unlearning"] = {}
    problems = check_params(params)
    assert problems[0].startswith("unlearning: unknown section; the sections are data, train, ")
    assert problems[1] == "oracle: missing section; add it (oracle: {} takes the defaults)"
    assert "oracle" in SECTIONS


def test_a_named_method_block_must_name_a_registered_method():
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["methods"]["salun_fast"] = {"method": "salunn", "epochs": 2}
    assert [p.split(";")[0] for p in check_params(params)] == [
        "methods.salun_fast.method: unknown unlearning method 'salunn'"]


def test_top_lists_the_most_memorized_examples_with_labels_and_planted_noise(tmp_path, capsys, synthetic):
    import pandas as pd

    from memunlearn.data import save_info, save_split
    from memunlearn.data.owner_ids import owner_table, save_owner_ids
    from memunlearn.io import save_table

    train, _, info, flipped = synthetic
    ids = train.example_ids.numpy()
    score = (ids % 7) / 7.0  # at most 0.86: the 3 set below follow the planted example
    clean_rows = [i for i in range(len(ids)) if ids[i] not in flipped][:3]
    score[clean_rows] = [0.99, 0.98, 0.97]
    save_split(train, tmp_path / "data/prepared/train.npz")
    save_info(info, tmp_path / "data/prepared/meta.json")
    clean = {int(flipped[0]): 3}
    save_table(pd.DataFrame({"example_id": list(clean), "clean_label": list(clean.values()),
                             "noisy_label": [int(train.labels[ids == flipped[0]][0])]}),
               tmp_path / "data/prepared/label_noise.csv")
    score[ids == flipped[0]] = 0.995  # the planted example is the most memorized
    save_table(pd.DataFrame({"example_id": ids, "mem": score, "mem_prob": score, "mem_se": 0.01,
                             "mem_prob_se": 0.02}), tmp_path / "data/memorize/scores.parquet")
    save_owner_ids(owner_table(ids, [f"owner-{i}" for i in ids]), tmp_path / "data/prepared")

    with pytest.raises(SystemExit) as exit_:
        main(["top", "--n", "4", "--root", str(tmp_path)])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:5]]
    assert [int(r[1]) for r in rows] == [int(flipped[0]), *ids[clean_rows].tolist()]
    assert lines[0].split()[:3] == ["rank", "example_id", "owner_id"]
    assert [r[2] for r in rows] == [f"owner-{int(r[1])}" for r in rows]  # the owner's id beside each example id
    assert lines[1].endswith("yes (was class 3)") and "yes" not in lines[2]
    assert rows[1][3:5] == ["class", str(int(train.labels[clean_rows[0]]))]  # no names on record: "class <i>"
    assert lines[-1].startswith("1 of 4 are planted label noise")


def test_top_without_scores_names_the_stage_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["top", "--root", str(tmp_path)])
    assert exit_.value.code == 1
    assert "dvc repro prepare" in capsys.readouterr().err


def test_overrides_turn_the_text_preset_into_dvc_set_params(capsys):
    import shlex

    main(["overrides", str(PARAMS_FILE.parent / "params/text.yaml"), "--params", str(PARAMS_FILE)])
    args = shlex.split(capsys.readouterr().out)
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert set(args[0::2]) == {"-S"}
    assert pairs["data.dataset"] == "pydoc_topics" and pairs["train.model"] == "gpt2_tiny"
    assert pairs["++data.text.canary_copies"] == "[1,4,16]"  # a key params.yaml lacks: added (Hydra ++)


def test_check_with_a_preset_checks_the_params_a_dvc_experiment_would_run(tmp_path, capsys):
    preset = PARAMS_FILE.parent / "params/text.yaml"
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(PARAMS_FILE), "--preset", str(preset)])
    assert exit_.value.code == 0 and "params/text.yaml: OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  dataset: pydoc_topics\ntrain:\n  model: small_cnn\n")  # an image model on text
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--params", str(PARAMS_FILE), "--preset", str(bad)])
    err = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 1 and any(e.startswith("train.model: 'small_cnn' is an image model") for e in err)

"""The flows' helpers that need no Prefect server: params checked before DVC, `dvc exp run -S` arguments as DVC
itself applies them, DVC's stage notes, line-by-line streaming, one concurrency limit per checkout; where the
flows live (the top-level `flows/`, beside dvc.yaml) and how they are run."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.tasks import check_params, checkout_limit, set_param_args, stage_outcome, stream, with_overrides

REPO = Path(__file__).resolve().parents[1]


def test_overrides_become_hydra_arguments_that_dvc_applies_with_their_types(tmp_path):
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    params.write_text("unlearn:\n  method: neggrad_plus  # a comment\n  seed: 0\nmethods:\n  finetune: {}\n")
    overrides = {"unlearn.method": "finetune", "unlearn.seed": 3, "methods.finetune.lr": 0.5,
                 "methods.salun": {"threshold": 0.5, "name": "1"}, "ablations.seeds": [0, 1], "x.flag": True,
                 "x.quote": "it's", "x.none": None}
    args = set_param_args(overrides)
    assert args[::2] == ["-S"] * len(overrides)
    apply_overrides(params, args[1::2])
    assert yaml.safe_load(params.read_text()) == with_overrides(
        {"unlearn": {"method": "neggrad_plus", "seed": 0}, "methods": {"finetune": {}}}, overrides)
    assert "# a comment" in params.read_text()


def test_overrides_are_checked_with_every_problem_before_any_dvc_work(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    check_params(str(tmp_path), {"unlearn.method": "finetune"})
    with pytest.raises(ValueError) as error:
        check_params(str(tmp_path), {"unlearn.strategy": "nope", "train.epochs": "5", "nosection.x": 1})
    lines = str(error.value).splitlines()
    assert lines[0].endswith("has 3 problem(s); nothing ran:")
    assert any(line.startswith("unlearn.strategy: unknown RUM strategy 'nope'") for line in lines)
    assert any(line.startswith("train.epochs") for line in lines)
    assert any(line.startswith("nosection: unknown section") for line in lines)
    with pytest.raises(ValueError, match="'unlearn' is not a section"):
        with_overrides({"unlearn": 1}, {"unlearn.seed": 0})


@pytest.mark.parametrize("line, outcome", [
    ("Running stage 'ablations_cell@neggrad_plus-exact_prob-high-rum_f-0':", ("ablations_cell@neggrad_plus-exact_prob-high-rum_f-0", True)),
    ("Stage 'prepare' is cached - skipping run, checking out outputs", ("prepare", True)),
    ("Stage 'train' didn't change, skipping", ("train", False)),
    ("> python stages/train.py", None),
])
def test_dvc_stage_notes_say_which_stage_ran(line, outcome):
    assert stage_outcome(line) == outcome


def test_stream_hands_over_each_line_as_it_comes_and_raises_with_the_error_lines(tmp_path):
    lines = []
    script = "import sys, time; print('one'); print('bar 1\\rbar 2'); time.sleep(0.2); print('two', file=sys.stderr)"
    stream([sys.executable, "-c", script], str(tmp_path), {}, lines.append)
    assert lines == ["one", "bar 2", "two"]
    failing = "import sys; print('working'); print('error: unknown method x', file=sys.stderr); sys.exit(1)"
    with pytest.raises(RuntimeError, match="failed: error: unknown method x"):
        stream([sys.executable, "-c", failing], str(tmp_path), {}, lines.append)


def test_each_checkout_has_its_own_concurrency_limit(tmp_path):
    (tmp_path / "a").mkdir()
    assert checkout_limit(str(tmp_path / "a")) == checkout_limit(str(tmp_path / "a" / "."))
    assert checkout_limit(str(tmp_path / "a")) != checkout_limit(str(tmp_path / "b"))


def test_only_outputs_that_neither_dvc_nor_git_keep_are_copied_into_an_experiment(tmp_path):
    import subprocess

    from flows.tasks import uncached_outputs

    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {"cmd": "true", "outs": [
        "cached", {"local": {"cache": False, "persist": True}}, {"in_git.json": {"cache": False}},
        {"missing": {"cache": False}}]}}}))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    for name in ("cached", "local", "in_git.json"):
        (tmp_path / name).write_text("x")
    subprocess.run(["git", "add", "in_git.json"], cwd=tmp_path, check=True)
    assert uncached_outputs(str(tmp_path)) == ["local"]


def test_a_target_stage_runs_only_what_it_needs_and_a_preset_becomes_overrides():
    from flows.tasks import preset_overrides, stage_order

    repo = Path(__file__).resolve().parents[1]
    assert stage_order(str(repo), "summary") == ["sources", "prepare", "train", "memorize", "proxies", "partition",
                                                 "oracle", "unlearn", "evaluate", "summary"]  # the text path (README)
    with pytest.raises(ValueError, match="unknown target stage 'nope'"):
        stage_order(str(repo), "nope")
    overrides = preset_overrides(repo / "params/text.yaml")
    assert overrides["data.dataset"] == "pydoc_topics" and overrides["data.text.canary_copies"] == [1, 4, 16]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    check_params(str(repo), overrides)  # the preset over params.yaml is valid
    assert params["data"]["dataset"] == "mnist_embedded"  # untouched


FLOWS = REPO / "flows"


def _from_imports(path: Path) -> list[tuple[str, str]]:
    return [(node.module or "", alias.name) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) for alias in node.names]


@pytest.mark.parametrize("flow", ["pipeline", "grids"])
def test_a_flow_imports_the_library_and_the_shared_tasks_without_path_edits(flow):
    source = FLOWS / f"{flow}.py"
    local = [(module, name) for module, name in _from_imports(source) if module.split(".")[0] == "flows"]
    assert local and all(module == "flows.tasks" and not name.startswith("_") for module, name in local)
    assert "sys.path" not in source.read_text()


def test_the_library_never_imports_the_flows():  # flows/ drives a checkout; src/memunlearn is what it drives
    for path in (REPO / "src" / "memunlearn").rglob("*.py"):
        assert not [m for m, _ in _from_imports(path) if m.split(".")[0] == "flows"], path
        assert "memunlearn.flows" not in path.read_text(), path


def test_prefect_yaml_names_the_flows_in_the_top_level_folder():
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    entrypoints = [d["entrypoint"] for d in deployments]
    assert sorted(entrypoints) == ["flows/forget.py:forget_flow", "flows/grids.py:grids", "flows/pipeline.py:pipeline"]
    for entry in entrypoints:
        path, name = entry.split(":")
        assert f"def {name}(" in (REPO / path).read_text()


def test_python_m_flows_runs_from_the_root_with_only_the_library_installed():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # the library as installed; the root is not on it
    out = subprocess.run([sys.executable, "-m", "flows.pipeline", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "--preset" in out.stdout, out.stderr

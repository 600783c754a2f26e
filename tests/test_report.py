"""`memunlearn report` (src/memunlearn/run_report.py, cli.py): the headline of metrics/summary.json and the
claims of results/claims.csv, every line within WIDTH, for an image run (the committed metrics) and a text run;
one line naming the missing file and its stage before the pipeline ran. The tiny project's real outputs are
reported in tests/test_pipeline_e2e.py."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from memunlearn.cli import main
from memunlearn.evaluation.claims import COLUMNS
from memunlearn.modality.text.pipeline import TEXT_COVERS
from memunlearn.modality.text.claims import first_epoch_ga_claims
from memunlearn.run_report import WIDTH, claims_lines, headline_lines, run_report

from test_text_claims import rows as text_rows  # tests/ is on sys.path under pytest (no __init__.py)

REPO = Path(__file__).resolve().parents[1]
SUMMARY = json.loads((REPO / "metrics/summary.json").read_text())  # the committed default run's headline


def image_claims() -> pd.DataFrame:
    """results/claims.csv of the committed default run, rebuilt from its metrics/claims.json (the cost claim has
    no seeds, as evaluation/claims.py writes it)."""
    found = json.loads((REPO / "metrics/claims.json").read_text())
    return pd.DataFrame([{"claim": claim, "finding": f"the finding of {claim}", "comparison": "tow[a] - tow[b]",
                          "effect": m["effect"], "ci_low": math.nan if m["ci_low"] is None else m["ci_low"],
                          "ci_high": math.nan if m["ci_high"] is None else m["ci_high"],
                          "n_seeds": 0 if m["ci_low"] is None else 5, "verdict": m["verdict"]}
                         for claim, m in found.items()], columns=list(COLUMNS))


def text_claims() -> pd.DataFrame:
    """A text run's results/claims.csv, in the shape modality/text/claims.py writes it."""
    found = first_epoch_ga_claims(text_rows((5.0, 5.2, 4.9), (9.0, 9.3, 8.8)), pd.Series([12.0, 12.0, 12.0]))
    found = found.assign(covers=TEXT_COVERS)  # the text pipeline's claims() names what every row covers
    return found.rename(columns={"effect_means": "comparison", "n": "n_seeds"})[list(COLUMNS)]


def lines_of(text: str) -> list[str]:
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, f"lines over {WIDTH} characters: {too_wide}"
    return lines


def test_the_image_report_holds_the_headline_and_every_claim_with_its_verdict():
    claims = image_claims()
    link = "http://127.0.0.1:5000/#/experiments/1/runs"
    lines = lines_of(run_report(SUMMARY, claims, link))
    text = "\n".join(lines)
    for name, key in (("ToW", "tow"), ("ToW-MIA", "tow_mia"), ("FA", "forget_acc"), ("RA", "retain_acc"),
                      ("TA", "test_acc")):
        assert f" {name} {SUMMARY[key]:.3f} " in text
    assert f"planted-noise AUROC {SUMMARY['planted_noise_auroc']:.3f} (mem), " \
           f"{SUMMARY['planted_noise_auroc_prob']:.3f} (mem_prob)" in text
    assert f"stability {SUMMARY['score_stability']:.3f}" in text and f"the {SUMMARY['num_models']} subset" in text
    for row in claims.itertuples():
        [line] = [line for line in lines if line.split()[-1:] == [row.claim] or f" {row.claim} " in line]
        assert line.startswith(f"  {row.verdict} ")
        if row.verdict == "not run":  # no figures: the name ends the line
            assert line.endswith(row.claim)
        elif row.n_seeds:
            assert f"{row.effect:+.3f}  [{row.ci_low:+.3f}, {row.ci_high:+.3f}]  5 seeds" in line
        else:
            assert line.endswith(f"{row.effect:.0f}x")  # a cost factor: no CI, no seeds
    counts = claims["verdict"].value_counts()
    assert f"{counts['supported']} supported" in text and f", of {len(claims)}" in text
    assert link in text and "dvc plots show" in text and "results/claims.md" in text and "memunlearn top" in text


def test_the_text_report_names_canaries_and_the_language_model_numbers():
    summary = {**SUMMARY, "forget_exposure": 3.456, "validation_ppl": 21.5, "score_stability": None}
    claims = text_claims()
    lines = lines_of(run_report(summary, claims, "", modality="text"))
    text = "\n".join(lines)
    assert "canary AUROC" in text and "planted-noise" not in text and "next-token accuracy" in text
    assert "canary exposure 3.46 bits" in text and "validation perplexity 21.50" in text
    assert "stability n/a" in text  # too few subset models for two halves: null in summary.json
    assert "memunlearn top" not in text and "results/evaluation.csv" in text  # top reads image splits
    for row in claims.itertuples():
        assert any(line.startswith(f"  {row.verdict}  ") and row.claim in line.split() for line in lines), row.claim


def test_a_long_claim_name_is_shortened_to_fit_and_a_missing_number_reads_n_a():
    claims = image_claims()
    claims.loc[0, "claim"] = "x" * 300
    lines = lines_of("\n".join(claims_lines(claims)))
    assert any("xxx..." in line for line in lines)
    assert "ToW n/a" in "\n".join(headline_lines({**SUMMARY, "tow": float("nan")}))


def _report(root: Path, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["report", "--root", str(root)])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def test_before_the_pipeline_one_line_names_the_missing_file_and_its_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = _report(tmp_path, capsys)
    assert code == 1 and not out and err.count("\n") == 1
    assert "metrics/summary.json is missing" in err and "`dvc repro summary`" in err
    (tmp_path / "metrics").mkdir()
    shutil.copy(REPO / "metrics/summary.json", tmp_path / "metrics/summary.json")
    code, out, err = _report(tmp_path, capsys)
    assert code == 1 and err.count("\n") == 1 and "results/claims.csv is missing" in err and "`dvc repro claims`" in err
    (tmp_path / "results").mkdir()
    (tmp_path / "results/claims.csv").write_text("claim,verdict\nx,supported\n")
    code, out, err = _report(tmp_path, capsys)
    assert code == 1 and err.count("\n") == 1 and "claims.csv lacks the columns" in err
    (tmp_path / "metrics/summary.json").write_text('{"tow": 0.8')  # cut short
    code, out, err = _report(tmp_path, capsys)
    assert code == 1 and err.count("\n") == 1 and "metrics/summary.json is unreadable" in err
    assert "`dvc repro summary`" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "results"]  # no MLflow store was created


def test_after_a_run_it_links_the_mlflow_runs_table(tmp_path, capsys, monkeypatch):
    from memunlearn.tracking import TrackingTarget, open_parent, store_location

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "results").mkdir()
    shutil.copy(REPO / "metrics/summary.json", tmp_path / "metrics/summary.json")
    image_claims().to_csv(tmp_path / "results/claims.csv", index=False)
    code, out, _ = _report(tmp_path, capsys)
    assert code == 0 and "make ui" in out and "http://127.0.0.1:5000" in out and "#/experiments" not in out

    target = TrackingTarget(*store_location(tmp_path), "memunlearn", "key", "pipeline")  # a real SQLite store
    assert open_parent(target)
    code, out, _ = _report(tmp_path, capsys)
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(target.uri).get_experiment_by_name("memunlearn").experiment_id
    assert code == 0 and f"http://127.0.0.1:5000/#/experiments/{experiment}/runs" in out
    lines_of(out)

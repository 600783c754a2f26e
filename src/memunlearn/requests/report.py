"""A request's verification report: the JSON record and its Markdown rendering (printed, logged to MLflow)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..io import atomic_write, save_json


def markdown(report: Mapping[str, Any]) -> str:
    ids = report["ids"]
    lines = [f"# Deletion request {report['request_id']}: {report['verdict'].upper()}", "",
             f"- model: version {report['parent_version']} -> {report.get('new_version') or '(not registered)'} "
             f"of {report['model_name']}",
             f"- ids: {ids['count']} forgotten (digest {ids['digest']}), {len(ids['already_forgotten'])} already "
             f"forgotten (no-op){', ' + str(ids['duplicates']) + ' duplicate entries dropped' if ids['duplicates'] else ''}",
             f"- plan: {report['strategy']} with {report['method']}; scores {report['scores']['name']} "
             f"({'computed now' if report['scores']['computed'] else 'cached'}); subsets "
             + ", ".join(f"{k} {v}" for k, v in report["plan"].items()),
             _seconds_line(report["seconds"]), "",
             "| gate | figure | threshold | passed | detail |", "|---|---|---|---|---|"]
    for gate in report["gates"]:
        lines.append(f"| {gate['name']} | {gate['figure']:.4f} | {gate['threshold']} | "
                     f"{'yes' if gate['passed'] else '**no**'} | {gate['detail']} |")
    for title, rows in (report.get("tables") or {}).items():  # the modality's own (text: canary exposure)
        lines += ["", f"{title}:", ""] + (_table(rows) if rows else ["(none)"])
    if report.get("reason"):
        lines += ["", f"Rejected: {report['reason']}"]
    return "\n".join(lines) + "\n"


def _table(rows: list[Mapping[str, Any]]) -> list[str]:
    """Rows of equal keys as a Markdown table, floats to 3 decimals."""
    columns = list(rows[0])
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows)]


PHASES = {"load": "loading", "scores": "scores", "unlearn": "unlearning", "gates": "gates", "register": "registry"}


def _seconds_line(seconds: Mapping[str, float]) -> str:
    """Where the request's time went, e.g. ``- seconds: 4.1 in all; unlearning 2.8, scores 0.3, ...``."""
    parts = ", ".join(f"{label} {seconds[key]:.1f}" for key, label in PHASES.items() if key in seconds)
    return f"- seconds: {seconds['total']:.1f} in all; {parts}"


def write(report: Mapping[str, Any], folder: Path) -> list[Path]:
    """``<request_id>.json`` and ``.md`` in ``folder``, atomically; their paths."""
    json_path = Path(folder) / f"{report['request_id']}.json"
    md_path = json_path.with_suffix(".md")
    save_json(dict(report), json_path)
    atomic_write(md_path, lambda f: f.write(markdown(report).encode()))
    return [json_path, md_path]

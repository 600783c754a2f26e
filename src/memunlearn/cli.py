"""``memunlearn list``: what the registries hold (the names params.yaml accepts); ``memunlearn check``: is
params.yaml valid, every section through its typed config, before DVC deletes any output."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _registries():
    from .data import DATASETS
    from .evaluation import MIA_FEATURES
    from .memorization import PROXIES
    from .models import MODELS
    from .partition import FORGET_KINDS
    from .unlearning import METHODS, STRATEGIES

    return {
        "datasets (data.dataset)": {n: "" for n in DATASETS.names()},
        "models (train.model)": {n: "" for n in MODELS.names()},
        "proxies (proxies.names, partition.*_score)": {
            n: f"{'+' if p.direction > 0 else '-'} {p.summary}" for n, p in PROXIES.items()},
        "forget-set kinds (partition.kind)": {n: "" for n in FORGET_KINDS.names()},
        "unlearning methods (unlearn.method)": {n: m.summary for n, m in METHODS.items()},
        "strategies (unlearn.strategy)": {n: "" for n in STRATEGIES.names()},
        "MIA features (evaluate.mia_feature)": {n: "" for n in MIA_FEATURES.names()},
    }


def list_registries() -> str:
    lines = []
    for title, entries in _registries().items():
        lines.append(f"{title}:")
        width = max(map(len, entries), default=0)
        lines += [f"  {name:<{width}}  {text}".rstrip() for name, text in entries.items()]
    return "\n".join(lines)


def check(path: Path) -> int:
    """Print every problem of params file ``path`` (one line each, key path first) or one OK line; 0 = valid."""
    import yaml

    from .params import SECTIONS, check_params

    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        print(f"{path}: not found; run from the repository root or pass --params", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        print(f"{path}: not valid YAML: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    problems = check_params(params) if isinstance(params, dict) else [f"{path}: write a mapping of sections"]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s); fix them before `dvc repro`", file=sys.stderr)
        return 1
    methods = len(params.get("methods") or {})
    print(f"{path}: OK ({len(SECTIONS) + 1} sections, {methods} method blocks)")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memunlearn", description="memorization-aware machine unlearning")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the registered datasets, models, proxies and methods")
    checker = commands.add_parser("check", help="validate every params.yaml section; every problem at once")
    checker.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file (params.yaml)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(list_registries())
    elif args.command == "check":
        sys.exit(check(args.params))


if __name__ == "__main__":
    main()

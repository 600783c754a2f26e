"""``memunlearn list``: what the registries hold (the names params.yaml accepts)."""
from __future__ import annotations

import argparse


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memunlearn", description="memorization-aware machine unlearning")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the registered datasets, models, proxies and methods")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(list_registries())


if __name__ == "__main__":
    main()

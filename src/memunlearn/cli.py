"""``memunlearn list``: what the registries hold (the names params.yaml accepts); ``memunlearn check``: is
params.yaml valid, every section through its typed config, before DVC deletes any output; ``memunlearn store``:
list, verify and garbage-collect the subset-model store; ``memunlearn top``: the most memorized training examples;
``memunlearn report``: the run's headline, its claims with their verdicts and where to look next;
``memunlearn forget`` and ``memunlearn requests ls|verify|retrain``: deletion requests (docs/requests.md)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path


def _registries():
    from .data import MODALITY_DATASETS
    from .evaluation import MIA_FEATURES
    from .memorization import PROXIES
    from .modality import MODALITIES
    from .models import MODALITY_MODELS
    from .partition import FORGET_KINDS
    from .unlearning import METHODS, STRATEGIES

    return {
        "modalities (picked by data.dataset and train.model)": {n: m.summary for n, m in MODALITIES.items()},
        "datasets (data.dataset)": {n: m for m, r in MODALITY_DATASETS.items() for n in r.names()},
        "models (train.model)": {n: m for m, r in MODALITY_MODELS.items() for n in r.names()},
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


def check(path: Path, preset: Path | None = None) -> int:
    """Print every problem of params file ``path`` (with ``preset``'s keys applied, as `dvc exp run` with
    `memunlearn overrides` would) and of the MEMUNLEARN_* environment variables (one line each, key path or
    variable first) or one OK line; 0 = valid."""
    import yaml

    from .config import ConfigError, with_preset
    from .params import SECTIONS, check_params

    try:
        params = yaml.safe_load(path.read_text())
        if preset is not None:
            params = with_preset(params, yaml.safe_load(preset.read_text()) or {})
            path = Path(f"{path} + {preset}")
    except FileNotFoundError as exc:
        print(f"{exc.filename}: not found; run from the repository root or pass --params", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        print(f"{path}: not valid YAML: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"{preset}: {exc}", file=sys.stderr)
        return 1
    problems = (check_params(params, os.environ) if isinstance(params, dict)
                else [f"{path}: write a mapping of sections"])
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s); fix them before `dvc repro`", file=sys.stderr)
        return 1
    methods = len(params.get("methods") or {})
    print(f"{path}: OK ({len(SECTIONS) + 1} sections, {methods} method blocks)")
    return 0


# ---- memunlearn store ls | verify | gc: the subset-model store (memorization/housekeeping.py) ----------------

def add_store_commands(commands) -> None:
    store = commands.add_parser("store", help="the subset-model store: ls, verify, gc")
    actions = store.add_subparsers(dest="store_command", required=True)
    helps = {"ls": "keys, models and bytes per key, and the key the current params and code use",
             "verify": "check every file's checksum; exit 1 on a bad one",
             "gc": "remove the keys no current params use (a dry run unless --yes)"}
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--root", type=Path, default=Path("data/memorize_store"), help="the store folder")
        if name != "verify":
            action.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file")
            action.add_argument("--prepared", type=Path, default=Path("data/prepared"), help="the prepared splits")
        if name == "gc":
            action.add_argument("--yes", action="store_true", help="delete them (default: list what would go)")


def store_command(args) -> int:
    """Run ``memunlearn store <ls|verify|gc>``; the exit code."""
    from .memorization import housekeeping

    if args.store_command == "verify":
        checked, problems = housekeeping.verify(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{args.root}: {checked} files checked, {len(problems)} bad")
        return 1 if problems else 0
    current, why = _current_store_key(args.params, args.prepared)
    if args.store_command == "ls":
        keys = housekeeping.stored_keys(args.root)
        for stored in keys:
            mark = "  <- current params and code" if stored.key == current else ""
            print(f"{stored.key}  {len(stored.indices):>6} models  {_size(stored.bytes):>9}{mark}")
        print(f"{args.root}: {len(keys)} keys, {sum(len(k.indices) for k in keys)} models, "
              f"{_size(sum(k.bytes for k in keys))}; current key: {current or f'unknown ({why})'}")
        return 0
    if current is None:
        print(f"cannot tell which key the current params use ({why}); nothing removed", file=sys.stderr)
        return 1
    unused = housekeeping.unused_keys(args.root, {current})
    for stored in unused:
        if args.yes:
            housekeeping.remove_key(args.root, stored.key)
        print(f"{'removed' if args.yes else 'would remove'} {stored.key} ({len(stored.indices)} models, "
              f"{_size(stored.bytes)}): no current params use it")
    if not unused:
        print(f"{args.root}: every key is in use ({current})")
    elif args.yes:
        print("`dvc commit memorize` records the smaller store; the DVC cache keeps the removed models until `dvc gc`")
    else:
        print("dry run: `memunlearn store gc --yes` removes them")
    return 0


def _current_store_key(params_path: Path, prepared: Path) -> tuple[str | None, str]:
    """(the key the memorize stage would use now, or None; why not)."""
    import yaml

    from .config import ConfigError
    from .memorization.housekeeping import current_key

    try:
        return current_key(yaml.safe_load(params_path.read_text()) or {}, prepared), ""
    except (OSError, ValueError, ConfigError, yaml.YAMLError) as exc:
        return None, " ".join(str(exc).split())


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


# ---- memunlearn top -------------------------------------------------------------

def top(n: int, score: str, root: Path) -> int:
    """Print the ``n`` most memorized training examples of the project in ``root`` (its `memorize` and
    `prepare` outputs): rank, example id, the owner's id, label, score ± SE, planted noise; 0 = printed."""
    from .data import load_info, load_split
    from .data.owner_ids import load_owner_ids
    from .io import load_table
    from .labels import class_names
    from .memorization.ranking import ranked_examples

    try:
        info = load_info(root / "data/prepared/meta.json")
        train = load_split(root / "data/prepared/train.npz")
        scores = load_table(root / "data/memorize/scores.parquet", "memorize")
        planted = load_table(root / "data/prepared/label_noise.csv", "prepare")
        owners = load_owner_ids(root / "data/prepared")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ranked = ranked_examples(scores, train.example_ids, train.labels, planted, score).head(n)
    names = class_names(info)
    owner = owners.reindex(ranked["example_id"].to_numpy()).to_numpy()
    width = max([len("owner_id"), *(len(str(o)) for o in owner)])
    print(f"{'rank':>4}  {'example_id':>10}  {'owner_id':<{width}}  {'label':<12}  {score + ' ± se':>15}  "
          f"planted noise")
    for rank, (row, owner_id) in enumerate(zip(ranked.itertuples(), owner), 1):
        noise = f"yes (was {names[row.clean_label]})" if row.planted_noise else ""
        print(f"{rank:>4}  {row.example_id:>10}  {owner_id:<{width}}  {names[row.label]:<12}  {row.score:>7.3f} ± "
              f"{row.score_se:<5.3f}  {noise}".rstrip())
    planted_share = ranked["planted_noise"].mean() if len(ranked) else 0.0
    print(f"{int(ranked['planted_noise'].sum())} of {len(ranked)} are planted label noise ({planted_share:.0%}); "
          f"{len(planted)} of {len(train)} training examples were planted")
    return 0


# ---- memunlearn report ----------------------------------------------------------

def report(root: Path) -> int:
    """Print the headline and claims of the run in project ``root`` and where to look next (run_report.py);
    0 = printed, 1 = an input is missing or unreadable (one line naming it and the stage that writes it)."""
    import json

    import pandas as pd

    from .evaluation.claims import COLUMNS
    from .run_report import INPUTS, run_report
    from .tracking import DEFAULT_UI, TrackingTarget, runs_link, store_location

    read = {".json": lambda path: json.loads(path.read_text()), ".csv": pd.read_csv}
    loaded = []
    for name, stage in INPUTS.items():
        path = root / name
        if not path.exists():
            print(f"error: {path} is missing; run `dvc repro {stage}` (or `make run`) first", file=sys.stderr)
            return 1
        try:
            loaded.append(read[path.suffix](path))
        except (ValueError, pd.errors.ParserError) as exc:  # JSONDecodeError and pandas' EmptyDataError included
            print(f"error: {path} is unreadable ({' '.join(str(exc).split())}); rerun `dvc repro {stage}`",
                  file=sys.stderr)
            return 1
    summary, claims = loaded
    if missing := [c for c in COLUMNS if c not in claims.columns]:
        print(f"error: {root / 'results/claims.csv'} lacks the columns {missing}; rerun `dvc repro claims`",
              file=sys.stderr)
        return 1
    meta = root / "data/prepared/meta.json"  # the run's modality: an image meta.json has no such key
    modality = json.loads(meta.read_text()).get("modality", "image") if meta.exists() else "image"
    uri, artifacts = store_location(root.resolve(), os.environ.get("MLFLOW_TRACKING_URI"))
    target = TrackingTarget(uri, artifacts, os.environ.get("MLFLOW_EXPERIMENT_NAME", "memunlearn"))
    print(run_report(summary, claims, runs_link(target) or DEFAULT_UI, modality))
    return 0


# ---- memunlearn forget; memunlearn requests ls | verify | retrain (requests/, docs/requests.md) --------------

KILL_AT = "MEMUNLEARN_REQUESTS_KILL_AT"  # tests only: SIGKILL this process after the named step (crash safety)


def add_request_commands(commands) -> None:
    forgetting = commands.add_parser("forget", help="a deletion request: ids in, a verified registered model out")
    forgetting.add_argument("--ids", required=True, help="ids file: CSV with an id column, a JSON list, or one per line")
    forgetting.add_argument("--request-id", required=True, help="the request's id (a rerun with it completes it)")
    forgetting.add_argument("--model", help="MLflow model URI to start from (models:/memunlearn-original@production)")
    forgetting.add_argument("--method", help="a methods.<name> block (requests.method)")
    forgetting.add_argument("--strategy", help="a RUM strategy (requests.strategy)")
    requests = commands.add_parser("requests", help="the deletion-request ledger: ls, verify, retrain")
    actions = requests.add_subparsers(dest="requests_command", required=True)
    actions.add_parser("ls", help="every request: id, time, ids, versions, gates, verdict")
    actions.add_parser("verify", help="check the ledger's hash chain and every entry's model version; exit 1 if bad")
    actions.add_parser("retrain", help="train from scratch on D minus every forgotten id; the new base")
    for parser in (forgetting, *actions.choices.values()):
        parser.add_argument("--root", type=Path, default=Path("."), help="the project (the working directory)")


def request_project(root: Path):
    """The lineage of the project in ``root``: its params (requests, train, methods) and MLflow store
    (MLFLOW_TRACKING_URI, else the project's SQLite store). Sets torch's CPU threads from MEMUNLEARN_THREADS, as a
    stage does, for the CLI, the flow and the benchmark alike: on a loaded 2-core CPU a request unlearned 13x
    faster with one thread than with torch's default two (docs/requests.md "Measured")."""
    import yaml

    from .config import from_params
    from .devices import set_threads_from_environment
    from .requests import Project, RequestsConfig
    from .tracking import TrackingTarget, git_commit, store_location
    from .training.recipe import recipe_for

    set_threads_from_environment()
    params = yaml.safe_load((root / "params.yaml").read_text()) or {}
    uri, artifacts = store_location(root.resolve(), os.environ.get("MLFLOW_TRACKING_URI"))
    target = TrackingTarget(uri, artifacts, os.environ.get("MLFLOW_EXPERIMENT_NAME", "memunlearn"),
                            tags={"git_commit": git_commit(root)})
    return Project(root.resolve(), target, from_params(RequestsConfig, params.get("requests"), "requests"),
                   recipe_for(params, "original"), params.get("methods") or {}, recipe_for(params, "oracle"),
                   params.get("modality", "image"))


def _kill_at(step: str) -> None:
    if os.environ.get(KILL_AT) == step:
        os.kill(os.getpid(), 9)


def request_command(args) -> int:
    """Run ``memunlearn forget`` or ``memunlearn requests <ls|verify|retrain>``; the exit code. Bad input and a
    rejected request end with one line on stderr."""
    from .config import ConfigError
    from .registry import UnknownNameError
    from .requests import RequestError, RequestRejected, apply_policy, forget, retrain, verify_lineage
    from .requests.report import markdown

    try:
        project = request_project(args.root)
        if args.command == "forget":
            try:
                with contextlib.redirect_stderr(sys.stdout):  # MLflow's and torch's chatter: stderr keeps the verdict
                    outcome = forget(project, args.request_id, args.ids, args.model, args.method, args.strategy,
                                     on_step=_kill_at)
            except RequestRejected as exc:
                print(f"error: {exc}", file=sys.stderr)
                apply_policy(project, gate_failed=True)
                return 1
            if outcome.report and outcome.verdict == "accepted":
                print(markdown(outcome.report))
            already = (outcome.report or {}).get("already_forgotten") if outcome.verdict == "no-op" else None
            print(f"request {outcome.request_id}: {outcome.verdict}"
                  + (f" (all {len(already)} ids were forgotten by earlier requests)" if already else "")
                  + (f", version {outcome.version} of {project.model_name} is @production" if outcome.version else "")
                  + (f"; reports: {', '.join(map(str, outcome.reports))}" if outcome.reports else ""))
            base = apply_policy(project)
            if base:
                print(f"retrained from scratch ({base.report['reason']}): version {base.version} is the new base")
            return 0
        if args.requests_command == "ls":
            return _list_requests(project)
        if args.requests_command == "verify":
            problems = verify_lineage(project)
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{project.ledger}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
            return 1 if problems else 0
        with contextlib.redirect_stderr(sys.stdout):
            outcome = retrain(project, "on demand (memunlearn requests retrain)", on_step=_kill_at)
        print(f"retrained from scratch in {outcome.report['seconds']:.1f} s: version {outcome.version} of "
              f"{project.model_name} is @production")
        return 0
    except (RequestError, ConfigError, UnknownNameError, FileNotFoundError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _list_requests(project) -> int:
    from .requests import ledger

    entries = ledger.read(project.ledger)
    print(f"{'request':<16} {'time':<20} {'kind':<8} {'ids':>5} {'digest':<16} {'version':>11}  gates")
    for e in entries:
        gates = " ".join(f"{k}={'pass' if g['passed'] else 'FAIL'}" for k, g in (e.get("gates") or {}).items())
        print(f"{e['request_id']:<16} {e['time']:<20} {e['kind']:<8} {e['ids_count']:>5} {e['ids_digest']:<16} "
              f"{str(e['parent_version']) + '->' + str(e['new_version']):>11}  {gates or e.get('reason', '')}")
    print(f"{project.ledger}: {len(entries)} entries, {len(ledger.forgotten_owner_ids(entries))} ids forgotten")
    return 0


def overrides(path: Path, base: Path = Path("params.yaml")) -> str:
    """A params preset (e.g. params/text.yaml) as `dvc exp run` overrides: ``-S key=value`` per leaf key, values
    in YAML flow style (lists as [1,4,16]), each shell-quoted: run them with ``eval`` (README). A key that
    ``base`` lacks (e.g. data.text.*) is added: ``-S ++key=value`` (Hydra: add or override), as the Prefect
    flow writes every override."""
    import shlex

    import yaml

    from .config import dotted_leaves

    present = dotted_leaves(yaml.safe_load(base.read_text()) or {}) if base.exists() else {}
    out = []
    for key, value in dotted_leaves(yaml.safe_load(path.read_text()) or {}).items():
        if key not in present and not any(p.startswith(key + ".") for p in present):
            key = f"++{key}"
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        text = text.removesuffix("\n...").strip().replace(", ", ",")
        out.append(f"-S {shlex.quote(f'{key}={text}')}")
    return " ".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memunlearn", description="memorization-aware machine unlearning")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the registered datasets, models, proxies and methods")
    checker = commands.add_parser("check", help="validate every params.yaml section; every problem at once")
    checker.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file (params.yaml)")
    checker.add_argument("--preset", type=Path, help="check the params with this preset applied (params/text.yaml)")
    add_store_commands(commands)
    add_request_commands(commands)
    preset = commands.add_parser("overrides", help="a params preset as `dvc exp run -S key=value` arguments")
    preset.add_argument("preset", type=Path, help="e.g. params/text.yaml")
    preset.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file it overrides")
    ranking = commands.add_parser("top", help="the most memorized training examples, labels and planted noise")
    ranking.add_argument("--n", type=int, default=20, help="how many (20)")
    ranking.add_argument("--score", choices=("mem_prob", "mem"), default="mem_prob",
                         help="exact score: mem_prob (true-class probability, the default) or mem (0/1)")
    ranking.add_argument("--root", type=Path, default=Path("."), help="the project (the working directory)")
    summary = commands.add_parser("report", help="the run's headline, its claims with verdicts, where to look next")
    summary.add_argument("--root", type=Path, default=Path("."), help="the project (the working directory)")
    args = parser.parse_args(argv)
    if args.command == "report":
        sys.exit(report(args.root))
    if args.command == "top":
        sys.exit(top(args.n, args.score, args.root))
    if args.command in ("forget", "requests"):
        sys.exit(request_command(args))
    if args.command == "overrides":
        print(overrides(args.preset, args.params))
        return
    if args.command == "list":
        print(list_registries())
    elif args.command == "check":
        sys.exit(check(args.params, args.preset))
    elif args.command == "store":
        sys.exit(store_command(args))


if __name__ == "__main__":
    main()

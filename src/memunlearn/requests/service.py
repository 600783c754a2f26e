"""A deletion request end to end (docs/requests.md): ids in, a verified, registered model version out.

Under the lineage's lock: check the ids, resolve the starting version (the serving alias by default) and its data
fingerprint, plan from its cached memorization scores, unlearn with a RUM strategy on D minus everything the
lineage forgot, verify with the gates, register the candidate (status ``pending``), then, only when every gate
passes, append the ledger entry, move the alias and mark the version ``accepted``. Each of those last steps is
redone or skipped by a rerun of the same request id, so ``kill -9`` at any point leaves either the state before
the request or one that the rerun completes; a ledger entry always names an existing version. A failing request
tags its candidate ``rejected`` and changes nothing else.
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .. import tracking
from ..data.owner_ids import load_owner_ids
from ..devices import resolve_device
from ..forgotten import LEDGER
from ..io import load_table
from ..modality import IMAGE, load_modality
from ..seeding import derive_seed
from ..training.recipe import TrainConfig
from ..unlearning.cache import _weights_digest, cached_strategy
from ..unlearning.config import UnlearnConfig
from . import ledger
from .config import RequestsConfig
from .gates import failed, gate_rows
from .ids import RequestError, check_ids, ids_digest, read_ids
from .report import write as write_report
from .scores import plan_subsets, version_scores

ROLE = "original"  # the lineage is the registered original: memunlearn-original
ALIAS = "production"  # the serving alias requests start from and move


class RequestRejected(RuntimeError):
    """A gate failed: the candidate (``version``) is tagged rejected; alias, versions and ledger are unchanged."""

    def __init__(self, message: str, version: str):
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class Project:
    """Where a lineage lives: the DVC project's files (``root``) and the MLflow store (``target``)."""

    root: Path
    target: tracking.TrackingTarget
    config: RequestsConfig
    recipe: TrainConfig  # the original's recipe (train): a retrained base and the unlearning methods use it
    methods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # methods.<name> blocks
    oracle_recipe: TrainConfig | None = None  # the retrain method's (train with oracle.recipe over it); None: recipe
    modality: str = IMAGE  # the ``modality`` param: whose data, models and gates (modality/<name>/pipeline.py)

    @property
    def model_name(self) -> str:
        return tracking.registered_name(self.target, ROLE)

    @property
    def default_uri(self) -> str:
        return f"models:/{self.model_name}@{ALIAS}"

    @property
    def ledger(self) -> Path:
        return self.root / "requests/ledger.jsonl"  # tracked in git: small, text, the record

    @property
    def reports(self) -> Path:
        return self.root / "requests/reports"

    def path(self, relative: str) -> Path:
        return self.root / relative


@dataclass(frozen=True)
class Outcome:
    request_id: str
    verdict: str  # accepted | rejected | no-op | done before
    version: str | None
    report: Mapping[str, Any] | None = None
    reports: Sequence[Path] = ()


@dataclass(frozen=True)
class Data:
    """The lineage's prepared data as its modality loads it (``prepared``), with the splits a request reads."""

    prepared: Any  # modality/base.py Prepared: ImageSplit or TextSplit splits, info, planted examples
    modality: Any  # modality/base.py Modality: the model, scores and gates of this data
    owners: Any  # owner_id by example_id (data/owner_ids.py): requests name and record the owner's ids

    @property
    def train(self):
        return self.prepared.train

    @property
    def test(self):
        return self.prepared.test

    @property
    def validation(self):
        """Held out from training: the reference's non-members (the test split without a validation split)."""
        return self.prepared.validation if self.prepared.validation is not None else self.prepared.test

    @property
    def info(self):
        return self.prepared.info

    def split_digest(self, split) -> str:
        """A split's (example_id, label) digest as MLflow logs it (the modality's ``dataset_view``: a text
        sequence's label is its canary copy count)."""
        view = self.modality.dataset_view(split, self.prepared)
        return tracking.dataset_digest(np.asarray(view.example_ids), np.asarray(view.labels))

    @property
    def digest(self) -> str:
        """The data fingerprint a version must carry: D's digest, as the train stage logs D."""
        return self.split_digest(self.train)


def load_data(project: Project) -> Data:
    prepared = project.path("data/prepared")
    try:
        modality = load_modality(project.modality, prepared)
        owners = load_owner_ids(prepared)
    except (FileNotFoundError, ValueError) as exc:
        raise RequestError(str(exc)) from None
    return Data(modality.load(prepared), modality, owners)


Step = Callable[[str], None]  # called after each durable step (tests end the process there)


def forget(project: Project, request_id: str, ids: str | Path | Sequence, model_uri: str | None = None,
           method: str | None = None, strategy: str | None = None, on_step: Step = lambda step: None) -> Outcome:
    """Handle one deletion request; RequestError on bad input (nothing changed), RequestRejected on a failed
    gate (the candidate tagged rejected, nothing else changed)."""
    start = time.perf_counter()
    if not request_id or any(c in request_id for c in "/\\ \n"):
        raise RequestError(f"request id {request_id!r}: write a non-empty id without spaces or slashes")
    config = replace(project.config, **{k: v for k, v in (("method", method), ("strategy", strategy)) if v})
    config.validate()
    plan = UnlearnConfig(config.method, config.strategy, seed=config.seed, device=config.device).plan(project.methods)
    with ledger.lineage_lock(project.ledger):
        entries = _checked_entries(project)
        given = read_ids(ids)
        earlier = [e for e in entries if e["request_id"] == request_id]
        if earlier:
            return _complete(project, earlier[-1], entries, given)
        data = load_data(project)
        request = check_ids(given, data.owners, data.train.example_ids.numpy(),
                            {"test": data.test.example_ids.numpy(),
                             "validation": data.validation.example_ids.numpy()},
                            ledger.forgotten_ids(entries, data.owners))
        if not request.ids:
            return Outcome(request_id, "no-op", None, {"already_forgotten": list(request.already_forgotten)})
        parent = _resolve(project, model_uri or project.default_uri, data)
        return _unlearn_and_land(project, config, plan, request_id, request, parent, data, entries, start, on_step)


def _checked_entries(project: Project) -> list[dict]:
    """The ledger, refused when its hash chain is broken (a request must not extend a tampered record)."""
    entries = ledger.read(project.ledger)
    broken = ledger.chain_problems(entries)
    if broken:
        raise RequestError(f"{project.ledger}: {broken[0]}; run `memunlearn requests verify` and restore the ledger")
    return entries


def _resolve(project: Project, uri: str, data: Data) -> tracking.VersionRef:
    """The starting version; RequestError when it does not exist or was trained on other data."""
    try:
        parent = tracking.resolve_version(project.target, uri)
    except LookupError as exc:
        hint = ("run `dvc repro train` first (it registers the original and sets @production)"
                if uri == project.default_uri else "pass an existing models:/<name>/<version> or @<alias>")
        raise RequestError(f"--model: {exc}; {hint}") from None
    fingerprint = parent.tags.get("data_digest") or tracking.training_digest(project.target, parent.run_id)
    if fingerprint != data.digest:
        raise RequestError(f"--model {uri}: its data fingerprint {fingerprint} does not match data/prepared "
                           f"({data.digest}); pass a model trained on this data or `dvc checkout` its data")
    return parent


def _load(project: Project, parent: tracking.VersionRef, data: Data) -> torch.nn.Module:
    return data.modality.registered_model(parent.tags.get("model", project.recipe.model),
                                          tracking.load_state_dict(project.target, parent), data.info, project.recipe)


def _is_pipeline_original(project: Project, model: torch.nn.Module, data: Data) -> bool:
    """Whether ``model`` is the train stage's checkpoint (then the memorize stage's exact scores are its own)."""
    checkpoint = project.path("data/train/model.pt")
    if not checkpoint.exists():
        return False
    original, _ = data.modality.load_model(checkpoint, "train")
    return _weights_digest(original) == _weights_digest(model)


@contextmanager
def _timed(seconds: dict, phase: str):
    """Add the block's wall seconds to ``seconds[phase]`` (the report's breakdown of a request's time)."""
    begin = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - begin


def _unlearn_and_land(project, config, plan, request_id, request, parent, data, entries, start, on_step) -> Outcome:
    device = resolve_device(config.device)
    seconds: dict[str, float] = {}  # phase -> wall seconds; "unlearn" is cached_strategy's own figure
    with _timed(seconds, "load"):
        model = _load(project, parent, data)
        exact_path = project.path("data/memorize/scores.parquet")
        table = load_table(exact_path, "memorize") if exact_path.exists() else None
        original = table is not None and _is_pipeline_original(project, model, data)
        exact = table if original else None
    with _timed(seconds, "scores"):
        scores = version_scores(model, data, device, config.proxy, exact, project.path("data/requests/scores"))
    levels = plan_subsets(np.asarray(request.ids), scores.values)
    forgotten = ledger.forgotten_ids(entries, data.owners) | set(request.ids)
    retain = pool = data.train.drop_ids(sorted(forgotten))  # nothing the lineage forgot is trained on again
    if config.retain_per_forget and config.retain_per_forget * len(request.ids) < len(retain):
        rng = np.random.default_rng(derive_seed(config.seed, f"requests/retain/{request.digest}"))
        retain = retain.take(np.sort(rng.choice(len(retain), config.retain_per_forget * len(request.ids),
                                                replace=False)))
    forget_split = data.train.select_ids(list(request.ids))
    train_dir = project.path("data/train" if original else "data/train/none")  # the original's stored gradients
    ctx = data.modality.unlearn_context(data.prepared, project.recipe, device, config.seed, train_dir)
    ctx = ctx.with_oracle_recipe(project.oracle_recipe or project.recipe)
    starting = copy.deepcopy(model)
    subsets = {name: data.train.select_ids(ids) for name, ids in levels.items()}
    candidate, steps, unlearn_seconds, _ = cached_strategy(config.strategy, model, subsets, retain, plan, ctx,
                                                           project.path("data/unlearn_cache"))
    with _timed(seconds, "gates"):
        check = data.modality.request_gates(starting, candidate, forget_split, retain, data.prepared, device, config,
                                            table)
    gates, figures = check.gates, check.figures
    on_step("unlearned")
    bad = failed(gates)
    reason = "; ".join(f"{g.name} failed: {g.detail} ({g.threshold})" for g in bad)
    report = {
        "request_id": request_id, "time": ledger.now(), "model_name": project.model_name,
        "parent_version": parent.version, "new_version": None, "verdict": "rejected" if bad else "accepted",
        "reason": reason, "method": config.method, "strategy": config.strategy,
        "ids": {"count": len(request.ids), "digest": request.digest, "forgotten": list(request.owner_ids),
                "example_ids": list(request.ids), "already_forgotten": list(request.already_forgotten),
                "duplicates": request.duplicates},
        "scores": {"name": scores.name, "computed": scores.computed},
        "plan": {name: len(ids) for name, ids in levels.items()},
        "retain": {"size": len(retain), "digest": data.split_digest(retain),
                   "pool_size": len(pool), "pool_digest": data.split_digest(pool)},
        "gates": gate_rows(gates), "figures": figures, "tables": dict(check.tables),
        "seconds": {"unlearn": unlearn_seconds, **seconds},  # + register and total, below
        "git_commit": project.target.tags.get("git_commit", "none"),
    }
    with _timed(report["seconds"], "register"):
        version = _register(project, request_id, request, report, candidate, forget_split, data, on_step)
    report["seconds"]["total"] = time.perf_counter() - start  # from the call: lock, ledger and data included
    report["new_version"] = version.version
    paths = write_report(report, project.reports)
    tracking.log_artifacts(project.target, version.run_id, paths)
    if bad:
        tracking.tag_version(project.target, project.model_name, version.version,
                             {"status": "rejected", "rejected_reason": reason[:4000]})
        raise RequestRejected(f"request {request_id} rejected: {reason}; version {version.version} is tagged "
                              f"rejected; @{ALIAS} did not move (the request started from version {parent.version})", version.version)
    entry = ledger.append(project.ledger, {
        "kind": "forget", "request_id": request_id, "time": report["time"], "ids_digest": request.digest,
        "ids_count": len(request.ids), "owner_ids": list(request.owner_ids), "ids": list(request.ids),
        "already_forgotten": list(request.already_forgotten),
        "parent_version": parent.version, "new_version": version.version, "method": config.method,
        "strategy": config.strategy, "scores": scores.name,
        "gates": {g["name"]: {"figure": g["figure"], "passed": g["passed"]} for g in report["gates"]},
        "verdict": "accepted"})
    on_step("ledger")
    _land(project, entry)
    return Outcome(request_id, "accepted", version.version, report, paths)


def _register(project, request_id, request, report, candidate, forget_split, data, on_step) -> tracking.VersionRef:
    """The candidate as a new version tagged with its lineage (status pending); a rerun after a crash reuses the
    pending version of the same request instead of registering another."""
    pending = tracking.versions_tagged(project.target, project.model_name,
                                       {"request_id": request_id, "ids_digest": request.digest, "status": "pending"})
    if pending:
        return pending[-1]
    tags = {"request_id": request_id, "parent_version": report["parent_version"], "ids_digest": request.digest,
            "ids_count": len(request.ids), "method": report["method"], "strategy": report["strategy"],
            "scores": report["scores"]["name"], "data_digest": data.digest, "model": project.recipe.model,
            "kind": "forget", "status": "pending"}
    target = replace(project.target, group_key=f"request-{request_id}", group_name=f"forget {request_id}")
    metrics = {k: v for k, v in report["figures"].items() if isinstance(v, (int, float))}
    # the parent's architecture, whose serving MLflow validated when the lineage's first version was logged
    model = tracking.ModelRecord(candidate, ROLE, data.info, tags, data.modality.model_card(data.info),
                                 validate_serving=False)
    run_id = tracking.record_stage(tracking.StageRecord(
        "forget", params={"request_id": request_id, "method": report["method"], "strategy": report["strategy"],
                          "parent_version": report["parent_version"], "scores": report["scores"]["name"]},
        metrics=metrics, models={"model": model},
        datasets={"F": data.modality.dataset_view(forget_split, data.prepared)}, tags={"request_id": request_id}),
        target)
    found = [v for v in tracking.versions_tagged(project.target, project.model_name, {"request_id": request_id})
             if v.run_id == run_id] if run_id else []
    if not found:
        raise RuntimeError(f"MLflow did not register request {request_id}'s model in {project.target.uri}; "
                           f"nothing was recorded: fix the store and rerun the same request id")
    on_step("registered")
    return found[-1]


def _land(project: Project, entry: Mapping[str, Any]) -> None:
    """Move the alias to the entry's version (when it is the ledger's newest) and mark it accepted: idempotent."""
    newest = ledger.read(project.ledger)[-1]
    if newest["hash"] == entry["hash"]:
        tracking.set_alias(project.target, project.model_name, ALIAS, str(entry["new_version"]))
    tracking.tag_version(project.target, project.model_name, str(entry["new_version"]), {"status": "accepted"})


def _complete(project: Project, entry: Mapping[str, Any], entries: list[dict], given: list[str]) -> Outcome:
    """A request id the ledger holds: the same ids finish what a killed run left (alias, status); other ids are
    an error."""
    asked = ids_digest(given)
    if entry.get("kind") == "forget" and asked != entry["ids_digest"]:
        raise RequestError(f"request id {entry['request_id']!r} was used before for other ids (digest "
                           f"{entry['ids_digest']}); give this request a new id")
    _land(project, entry)
    return Outcome(entry["request_id"], "done before", str(entry["new_version"]))


# ---- the retrain policy ---------------------------------------------------------------------------------------

def retrain_due(project: Project, entries: list[dict], n_train: int, gate_failed: bool = False) -> str | None:
    """Why the policy (``requests.retrain_after_*``) asks for a retrain now, or None."""
    config = project.config
    since_base = entries[max((i for i, e in enumerate(entries) if e["kind"] == "retrain"), default=-1) + 1:]
    share = len(ledger.forgotten_owner_ids(entries)) / max(n_train, 1)
    if config.retrain_after_fraction and share >= config.retrain_after_fraction and since_base:
        return f"{share:.1%} of D forgotten (retrain_after_fraction {config.retrain_after_fraction})"
    if config.retrain_after_requests and len(since_base) >= config.retrain_after_requests:
        return f"{len(since_base)} requests since the base (retrain_after_requests {config.retrain_after_requests})"
    if gate_failed and config.retrain_after_failed_gate:
        return "a request failed a gate (retrain_after_failed_gate)"
    return None


def apply_policy(project: Project, gate_failed: bool = False) -> Outcome | None:
    """Retrain now when the policy asks for it (after a request); the retrain's outcome, or None."""
    entries = ledger.read(project.ledger)
    reason = retrain_due(project, entries, len(load_data(project).train), gate_failed)
    return retrain(project, reason) if reason else None


def retrain(project: Project, reason: str, on_step: Step = lambda step: None) -> Outcome:
    """Train from scratch on D minus every forgotten id (the train recipe), register it as the new base, record
    it in the ledger and move the alias to it."""
    with ledger.lineage_lock(project.ledger):
        entries = _checked_entries(project)
        data = load_data(project)
        forgotten = sorted(ledger.forgotten_ids(entries, data.owners))
        retain = data.train.drop_ids(forgotten)
        device = resolve_device(project.config.device)
        model, seconds, _ = data.modality.cached_oracle(retain, data.info, project.recipe, device,
                                                        project.config.seed, project.path("data/oracle_cache"))
        request_id = f"retrain-{sum(e['kind'] == 'retrain' for e in entries) + 1}"
        digest = ids_digest(ledger.forgotten_owner_ids(entries))
        parent = tracking.alias_version(project.target, project.model_name, ALIAS) or ""
        pending = tracking.versions_tagged(project.target, project.model_name,
                                           {"request_id": request_id, "ids_digest": digest, "status": "pending"})
        if pending:
            version = pending[-1]
        else:
            tags = {"request_id": request_id, "parent_version": parent, "ids_digest": digest,
                    "ids_count": len(forgotten), "kind": "retrain", "reason": reason, "data_digest": data.digest,
                    "model": project.recipe.model, "status": "pending"}
            target = replace(project.target, group_key=f"request-{request_id}", group_name=request_id)
            run_id = tracking.record_stage(tracking.StageRecord(
                "retrain", params={"reason": reason}, metrics={"seconds": seconds, "forgotten": len(forgotten)},
                models={"model": tracking.ModelRecord(model, ROLE, data.info, tags,
                                                      data.modality.model_card(data.info))}), target)
            found = [v for v in tracking.versions_tagged(project.target, project.model_name,
                                                         {"request_id": request_id}) if v.run_id == run_id]
            if not found:
                raise RuntimeError(f"MLflow did not register the retrained base in {project.target.uri}")
            version = found[-1]
        on_step("registered")
        entry = ledger.append(project.ledger, {
            "kind": "retrain", "request_id": request_id, "time": ledger.now(), "ids_digest": digest,
            "ids_count": len(forgotten), "parent_version": parent, "new_version": version.version,
            "reason": reason, "seconds": seconds, "verdict": "accepted"})
        _land(project, entry)
        return Outcome(request_id, "accepted", version.version, {"seconds": seconds, "reason": reason})


def verify_lineage(project: Project) -> list[str]:
    """Every problem of the ledger: the hash chain, each entry's version and its tags; pending versions that no
    entry names (a killed request: rerun it)."""
    entries = ledger.read(project.ledger)
    problems = ledger.verify(entries, lambda v: tracking.version_tags(project.target, project.model_name, v))
    named = {str(e.get("new_version")) for e in entries}
    for version in tracking.versions_tagged(project.target, project.model_name, {"status": "pending"}):
        if version.version not in named:
            problems.append(f"version {version.version} (request {version.tags.get('request_id')!r}) is pending "
                            f"with no ledger entry: a request was interrupted; rerun it with the same id and ids")
    return problems

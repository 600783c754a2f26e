"""params.yaml as a whole: which typed config each section builds, and ``check_params`` over all of them.

Each stage builds only the sections it declares (docs/architecture.md rule 1);
``SECTIONS`` is the one table of section -> config class, so ``memunlearn
check`` (and a flow, before DVC deletes any output) can check every section
at once, with the checks the stages make across sections (``unlearn`` against
``methods``, each grid's methods and scores).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from .config import ConfigError, from_params, keyed, nested_value, used_methods
from .data import PrepareConfig, data_modality
from .evaluation import EvaluateConfig
from .evaluation.claims import ClaimsConfig
from .experiments.forgetting_quality import ForgettingQualityConfig
from .grid import GRIDS, TUNED, GridConfig, grid_sections
from .experiments.tune import TuneConfig
from .memorization import PROXIES, ExactConfig, ProxyConfig
from .memorization.exact import ENVIRONMENT, execution_problems, moved_to_environment
from .modality.checks import modality_problems
from .partition import EMBEDDING_SCORES, EXACT_SCORES, PartitionConfig
from .registry import UnknownNameError
from .requests.config import RequestsConfig
from .training import RecordConfig, TrainConfig
from .training.recipe import ROLES, recipe_for
from .training.oracle import OracleConfig
from .unlearning import STRATEGIES, UnlearnConfig, UnlearnPlan
from .sources import is_registry_uri
from .memorization.proxies.compute import RECORDED
from .unlearning.config import REFERENCE_SUBSET_METHODS, init_conflicts


SECTIONS: dict[str, type] = {  # params.yaml section -> the config class the stages build from it
    "data": PrepareConfig,
    "train": TrainConfig,
    "train_records": RecordConfig,
    "memorize": ExactConfig,
    "proxies": ProxyConfig,
    "partition": PartitionConfig,
    "oracle": OracleConfig,
    "unlearn": UnlearnConfig,
    "evaluate": EvaluateConfig,
    **{grid: GridConfig for grid in GRIDS},
    TUNED: GridConfig,  # the tuned grid: run on modalities that tune (grid.py grid_sections)
    "tune": TuneConfig,
    "claims": ClaimsConfig,
    "forgetting_quality": ForgettingQualityConfig,
    "requests": RequestsConfig,
}
METHODS_SECTION = "methods"  # one block per method: methods.<name> builds the config class of its method
MODALITY_KEY = "modality"  # image or text: which modality's code the stages run (modality/checks.py checks it)


def check_params(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in a whole params.yaml, one line each starting with its key path; [] when all is well.
    With ``environ``, its MEMUNLEARN_* execution variables too (memorization/exact.py ``Execution``)."""
    problems: list[str] = execution_problems(environ) if environ is not None else []
    memorize = params.get("memorize")
    if moved := moved_to_environment(memorize):  # one line naming the variable, not "unknown key"
        problems += moved
        params = {**params, "memorize": {k: v for k, v in memorize.items() if k not in ENVIRONMENT}}

    def attempt(build: Callable[[], Any]) -> Any:
        try:
            return build()
        except UnknownNameError as exc:
            problems.append(str(keyed(exc, params, "")))
        except ValueError as exc:  # ConfigError and the range checks
            problems.extend(str(exc).splitlines())
        return None

    known = [*SECTIONS, METHODS_SECTION, MODALITY_KEY]
    problems += [f"{s}: unknown section; the sections are {', '.join(known)}" for s in params if s not in known]
    problems += [f"{s}: missing section; add it ({s}: {{}} takes the defaults)" for s in known
                 if s not in params and s != MODALITY_KEY]
    if MODALITY_KEY not in params:
        problems.append(f"{MODALITY_KEY}: missing; add it (modality: image, or text for a text corpus)")
    configs = {s: attempt(lambda s=s: from_params(SECTIONS[s], params[s], s)) for s in SECTIONS if s in params}
    if configs.get("train") is not None:  # each role's recipe merged over train (its keys named by their own path)
        for role, section in ROLES.items():
            if section and configs.get(section) is not None:
                attempt(lambda role=role: recipe_for(params, role))
    blocks = params.get(METHODS_SECTION) or {}
    if not isinstance(blocks, Mapping):
        return problems + [f"methods: got {blocks!r}; write a mapping of method blocks, e.g. {{none: {{}}}}"]
    for name in blocks:
        attempt(lambda name=name: _method_block(name, blocks))
    if configs.get("unlearn") is not None:
        attempt(lambda: configs["unlearn"].plan(blocks))
        if configs.get("forgetting_quality") is not None:
            attempt(lambda: configs["forgetting_quality"].resolve(configs["unlearn"]).plan(blocks))
    for grid in grid_sections(params.get(MODALITY_KEY) or "image"):
        if configs.get(grid) is not None:
            problems += _grid_problems(grid, configs[grid], blocks)
    if configs.get("tune") is not None and configs.get(TUNED) is not None:
        attempt(lambda: configs["tune"].check(blocks, configs[TUNED].seeds))
    if configs.get("requests") is not None and configs["requests"].method not in blocks:
        name = configs["requests"].method
        problems.append(f"requests.method: {name!r} has no methods.{name} block; add one (methods.{name}: {{}} "
                        f"takes the defaults)")
    init = configs["train"].init if configs.get("train") is not None else ""
    if configs.get("data") is None or data_modality(configs["data"].dataset) == "image":
        problems += _score_problems(params, configs.get("proxies"), init)
    problems += init_conflicts(init, used_methods(params), blocks)  # methods reading what init lacks
    if init and configs.get("data") is not None and data_modality(configs["data"].dataset) == "text":
        problems += _tokenizer_problems(init, configs["data"].text.tokenizer)
    unlearn = configs.get("unlearn")
    per_subset = unlearn is not None and STRATEGIES.get(unlearn.strategy).per_subset_methods
    problems += modality_problems(params, grids=GRIDS, reference_methods=REFERENCE_SUBSET_METHODS,
                                  per_subset=per_subset)
    if environ is not None and not problems:  # sizes from valid params only
        problems += buffer_problems(params, configs, environ)
    return problems


# memunlearn check's size estimates for the registered image datasets (a file dataset's size is known only once
# prepared: its stages still guard their buffers): dataset -> (training rows, channels, image size, classes)
REGISTERED_IMAGE_SHAPES = {
    "mnist_embedded": (5000, 1, 28, 10),  # before data.test_fraction is held out (no official test split)
    "mnist": (60000, 1, 28, 10), "fashion_mnist": (60000, 1, 28, 10), "svhn": (73257, 3, 32, 10),
    "cifar10": (50000, 3, 32, 10), "cifar100": (50000, 3, 32, 100), "cifar10_synthetic": (5000, 3, 32, 10),
}


def buffer_problems(params: Mapping[str, Any], configs: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """The N x P buffers the run would allocate, over ``MEMUNLEARN_MAX_BUFFER_GIB`` (memory.py): the first-epoch
    gradient store and the influence method's Fisher gradients, one line each naming the key and the bytes."""
    from .memory import BufferTooLarge
    from .models import build_model
    from .memory import check_first_epoch_store
    from .training.first_epoch_grads import stored_values
    from .unlearning.influence import check_fisher

    data, recipe, records = configs.get("data"), configs.get("train"), configs.get("train_records")
    if data is None or recipe is None or data.dataset not in REGISTERED_IMAGE_SHAPES:
        return []
    rows, channels, size, classes = REGISTERED_IMAGE_SHAPES[data.dataset]
    if data.dataset == "mnist_embedded":
        rows -= round(data.test_fraction * rows)
    rows = min(rows, data.max_train) if data.max_train else rows
    if data.validation_source == "train":
        rows -= int(data.validation_fraction * rows)
    model = build_model(recipe.model, channels, classes, size, seed=0)
    problems = []
    checks = [lambda: check_fisher(min(int(blocks.get("num_fisher", 1000)), rows),
                                   sum(p.numel() for p in model.parameters()), environ)
              for blocks in _influence_blocks(params)]
    if records is not None and records.first_epoch_grads:
        checks.insert(0, lambda: check_first_epoch_store(rows, stored_values(model, records.first_epoch_grads),
                                                         records.first_epoch_grads, environ))
    for guard in checks:
        try:
            guard()
        except BufferTooLarge as exc:
            problems.append(str(exc))
    return problems


def _influence_blocks(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``methods`` blocks of the influence method that the run uses (config.py ``used_methods``)."""
    blocks = params.get(METHODS_SECTION) or {}
    return [blocks[name] or {} for name in sorted({n for _, n in used_methods(params) if n in blocks})
            if (blocks[name] or {}).get("method", name) == "influence"]


def _method_block(name: str, blocks: Mapping[str, Any]) -> None:
    """Build ``methods.<name>`` with its method's config class (a ``method:`` key names the method)."""
    if not isinstance(blocks[name], Mapping):
        raise ConfigError(f"methods.{name}: got {blocks[name]!r}; write a mapping of hyperparameters, e.g. {{}}")
    try:
        UnlearnPlan(name, blocks).step_config(name, None)
    except UnknownNameError as exc:
        key = f"methods.{name}.method" if "method" in blocks[name] else f"methods.{name}"
        raise UnknownNameError(f"{key}: {exc}", exc.name, key) from None


def _grid_problems(grid: str, config: GridConfig, blocks: Mapping[str, Any]) -> list[str]:
    """Every method a grid lists needs its ``methods.<name>`` block (a cell reads only that block)."""
    return [f"{grid}.methods: {name!r} has no methods.{name} block; add one (methods.{name}: {{}} takes the "
            f"defaults)" for name in config.methods if name not in blocks]


def _score_problems(params: Mapping[str, Any], proxies: ProxyConfig | None, init: str = "") -> list[str]:
    """Scores named in ``partition`` and the grids must be exact, embedding or computed proxy scores (with
    ``train.init`` set: no proxy that reads the original's training records)."""
    computed = list(proxies.names) if proxies is not None and proxies.names else PROXIES.names()
    if init:
        computed = [n for n in computed if PROXIES.get(n).cost_source not in RECORDED]
    valid = [*EXACT_SCORES, *EMBEDDING_SCORES, *computed]
    named = []
    for key in ("group_score", "refine_score"):
        named.append((f"partition.{key}", nested_value(params, "partition", key)))
    for grid in GRIDS:
        scores = nested_value(params, grid, "group_scores")
        named += [(f"{grid}.group_scores[{i}]", s) for i, s in enumerate(scores if isinstance(scores, list) else [])]
        named += [(f"{grid}.fixed_group_score", nested_value(params, grid, "fixed_group_score") or None),
                  (f"{grid}.partition.refine_score", nested_value(params, grid, "partition", "refine_score"))]
    why = (f" (train.init loads a model trained elsewhere ({init!r}): the proxies that read its training records "
           "are not computed)" if init else " (proxies.names lists the computed proxies)")
    return [f"{key}: unknown score {name!r}; choose one of: {', '.join(valid)}" + (why if name in PROXIES else "")
            for key, name in named if isinstance(name, str) and name not in valid]


def _tokenizer_problems(init: str, tokenizer: str) -> list[str]:
    """A language model trained elsewhere reads the data through its own tokenizer: ``data.text.tokenizer`` names
    the directory ``train.init`` does (a registered model, ``models:/``, was trained on this project's tokenizer)."""
    if is_registry_uri(init) or tokenizer == init:
        return []
    return [f"data.text.tokenizer: {tokenizer!r}, but train.init loads the language model in {init!r}, which reads "
            f"its own tokenizer's ids; set data.text.tokenizer: {init}"]

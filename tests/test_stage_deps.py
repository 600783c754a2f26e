"""Every stage's dvc.yaml deps cover the project code its script imports (docs/architecture.md rule 7).

For each stage (matrix and foreach stages included) the stage script named
in its ``cmd`` is parsed with ``ast``; its imports are followed through the
project (``stages/``, ``src/memunlearn/``), package ``__init__`` files
included, since importing ``a.b.c`` runs ``a`` and ``a.b`` first. A file that
calls ``load_modality`` imports ``memunlearn.modality.<m>.pipeline`` by name:
the stage is checked once per modality ``m``, with ``${modality}`` in its deps
read as ``m`` (DVC fills it from params.yaml). Every file reached must lie
under a declared dep (a file, or a folder holding it), so editing code a
stage runs always reruns that stage. Plumbing that cannot change a result is
exempt (``PLUMBING``).
"""
from __future__ import annotations

import ast
import functools
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
STAGES_DIR = REPO / "stages"
PACKAGE = "memunlearn"
# Not deps by design (rule 7): params/paths/tracking glue, MLflow, where `device: auto` lands, the version string,
# class names (model metadata; the figures stage, which draws them, declares the file).
MODALITIES = sorted(p.parent.name for p in (SRC / PACKAGE / "modality").glob("*/pipeline.py"))  # image, text
LOADER = "load_modality"  # modality/base.py: imports modality/<name>/pipeline.py by name
PLUMBING = {"stages/_common.py", "src/memunlearn/tracking.py", "src/memunlearn/devices.py",
            "src/memunlearn/__init__.py", "src/memunlearn/labels.py"}


@functools.cache
def module_file(name: str) -> Path | None:
    """The file that defines module ``name`` in this project, or None for a third-party or stdlib module."""
    if name.split(".")[0] == PACKAGE:
        base = SRC.joinpath(*name.split("."))
    elif "." not in name and (STAGES_DIR / f"{name}.py").exists():  # stages import `_common` from their folder
        base = STAGES_DIR / name
    else:
        return None
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else None


def module_name(path: Path) -> str:
    """Dotted name of a project file (a stage script -> its stem; a package's ``__init__`` -> the package)."""
    if path.is_relative_to(SRC):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem


def per_content(read):
    """``read(path)`` computed once per file content: every stage and modality walks the same files."""
    cached = functools.cache(lambda path, mtime_ns, size: read(path))

    @functools.wraps(read)
    def once(path: Path):
        stat = path.stat()
        return cached(path, stat.st_mtime_ns, stat.st_size)
    return once


@per_content
def parsed(path: Path) -> ast.Module:
    """``path``'s syntax tree."""
    return ast.parse(path.read_text(), str(path))


def _names_of(nodes, path: Path) -> set[tuple[str, bool]]:
    """(module name, must exist) for the import statements among ``nodes`` (AST nodes of ``path``)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[tuple[str, bool]] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {(alias.name, True) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add((base, True))
            names |= {(f"{base}.{alias.name}", False) for alias in node.names}
    return names


def _called(tree: ast.AST) -> set[str]:
    """The names every call in ``tree`` calls (``f(...)`` and ``x.f(...)`` give ``f``)."""
    return {getattr(n.func, "id", getattr(n.func, "attr", None)) for n in ast.walk(tree) if isinstance(n, ast.Call)}


@per_content
def imported_names(path: Path) -> frozenset[tuple[str, bool]]:
    """(module name, must exist) for every module an import statement of ``path`` may load, function-level
    imports included; ``from pkg import name`` gives ``pkg`` (must exist) and ``pkg.name`` (may be a name)."""
    return frozenset(_names_of(ast.walk(parsed(path)), path))


@per_content
def _called_on_modality(path: Path) -> frozenset[str]:
    """The methods ``path`` calls on a variable named ``modality`` (the library's name for a Modality it is
    handed, e.g. experiments/grids.py's ``modality.observe(...)``)."""
    return frozenset(n.func.attr for n in ast.walk(parsed(path)) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and getattr(n.func.value, "id", None) == "modality")


@per_content
def loads_modality_code(path: Path) -> bool:
    """Whether ``path`` calls ``load_modality`` (modality/base.py defines it)."""
    return module_name(path) != f"{PACKAGE}.modality.base" and LOADER in _called(parsed(path))


def pipeline_names(modality: str, methods: set[str]) -> set[tuple[str, bool]]:
    """What running ``methods`` of modality/<modality>/pipeline.py imports: its module-level imports, and the
    function-level imports of those methods and of the module's functions they call (transitively). Python runs
    a function's imports only when it is called, so a stage depends on the methods it uses, not on all of them."""
    path = SRC / PACKAGE / "modality" / modality / "pipeline.py"
    tree = parsed(path)
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = _names_of(top, path) | {(f"{PACKAGE}.modality.{modality}.pipeline", True)}
    todo, done = [m for m in methods if m in functions], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        names |= _names_of(ast.walk(functions[name]), path)
        todo += [f for f in _called(functions[name]) if f in functions]
    return names


def is_pipeline(path: Path) -> bool:
    return path.name == "pipeline.py" and path.parent.parent == SRC / PACKAGE / "modality"


def imported_files(script: Path, modality: str | None = None) -> set[Path]:
    """The project files that running ``script`` imports, transitively; parents' ``__init__`` included. A script
    that loads a modality's code (``load_modality``) runs ``modality``'s pipeline module: its module-level
    imports and those of the methods any file the script runs calls on it (``pipeline_names``; the grids'
    runner calls the modality it is handed: ``_called_on_modality``)."""
    seen: set[Path] = set()
    todo, pipeline = [script], set()
    while todo:
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            # a modality's pipeline module is loaded by name only (test_pipelines_are_loaded_by_name_only): its
            # imports are pipeline_names, per method called
            for name, must_exist in (set() if is_pipeline(path) else imported_names(path)):
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                    found = module_file(".".join(parts[:i]))
                    if found is not None and found not in seen:
                        todo.append(found)
                if must_exist and parts[0] == PACKAGE and module_file(name) is None:
                    raise ImportError(f"{path} imports {name}, which is not in src/")
        code = [p for p in seen if not is_pipeline(p)]
        if not any(loads_modality_code(p) for p in code):
            break
        if modality is None:
            raise ValueError(f"{script} loads a modality's code: check it with a modality")
        called = set().union(*(_called(parsed(p)) if p == script else _called_on_modality(p)
                               for p in code))
        names = pipeline_names(modality, called) - pipeline
        pipeline |= names
        for name, _ in names:
            parts = name.split(".")
            todo += [f for i in range(1, len(parts) + 1)
                     if (f := module_file(".".join(parts[:i]))) is not None and f not in seen]
    return seen


def stage_definitions() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}  # foreach stages keep theirs in `do`


def stage_script(stage: dict) -> Path:
    words = shlex.split(stage["cmd"])
    scripts = [w for w in words if w.endswith(".py")]
    if not scripts:
        raise ValueError(f"cannot find the stage script in cmd {stage['cmd']!r}")
    return REPO / scripts[0]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep.rstrip("/") or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def resolved_deps(stage: dict, modality: str) -> list[str]:
    """The stage's deps as DVC reads them when params.yaml says ``modality: <modality>``."""
    return [str(d).replace("${modality}", modality) for d in stage.get("deps", [])]


def loads_a_modality(stage: dict) -> bool:
    return any(LOADER in {getattr(n.func, "id", getattr(n.func, "attr", None))}
               for n in ast.walk(parsed(stage_script(stage))) if isinstance(n, ast.Call))


def uncovered(stage: dict, modality: str = "image") -> list[str]:
    """Project files the stage imports that no dep covers (plumbing aside), on a run of ``modality``."""
    files = {str(p.relative_to(REPO)) for p in imported_files(stage_script(stage), modality)}
    deps = resolved_deps(stage, modality)
    return sorted(f for f in files - PLUMBING if not covered(f, deps))


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("name", list(stage_definitions()))
def test_stage_deps_cover_the_code_it_imports(name, modality):
    missing = uncovered(stage_definitions()[name], modality)
    assert not missing, (f"dvc.yaml stage {name!r} imports {missing} on a {modality} run but does not list them "
                         f"(or a folder) in deps")


MODALITY_FREE = ("summary", "sources")  # metrics files only; fingerprints of files: alike on every modality


def test_stages_load_their_modality_by_name():
    """Every stage but the modality-free ones runs one script for every modality (no per-modality copy)."""
    stages = stage_definitions()
    assert MODALITIES == ["image", "text"]
    for name in set(stages) - set(MODALITY_FREE):
        assert loads_a_modality(stages[name]), f"stage {name!r} should run its modality through load_modality"
        assert "modality" in stages[name].get("params", []), f"stage {name!r} should declare the modality param"


@pytest.mark.parametrize("modality", MODALITIES)
def test_one_modality_code_is_no_dep_of_the_others_runs(modality):
    """Editing a modality's own code (src/memunlearn/modality/<m>/: its pipeline, its models, the language-model
    training, gradients, ascent, metrics and claims of text) reruns no stage of another modality's run."""
    own = sorted(str(p.relative_to(REPO)) for p in (SRC / PACKAGE / "modality" / modality).rglob("*.py"))
    assert "src/memunlearn/modality/text/lm.py" in own or modality != "text"
    for name, stage in stage_definitions().items():
        for other in (m for m in MODALITIES if m != modality):
            deps = resolved_deps(stage, other)
            assert not [f for f in own if covered(f, deps)], f"{name} on {other} depends on {modality} code"
        if loads_a_modality(stage):
            assert covered(own[0], resolved_deps(stage, modality)), f"{name} on {modality} misses its code"


def test_models_are_built_from_their_modality_folder():
    """A model's architecture is imported by name when built (models/__init__.py): every stage that can build one
    declares its modality's folder, which holds the architectures."""
    for name, stage in stage_definitions().items():
        for modality in MODALITIES:
            files = {str(p.relative_to(REPO)) for p in imported_files(stage_script(stage), modality)}
            if "src/memunlearn/models/__init__.py" in files:
                assert "src/memunlearn/modality/${modality}" in stage["deps"], name


def test_an_image_run_imports_no_language_model_code():
    """No shared module imports the text modality's code: an image run reaches none of it (first_epoch_ga loads a
    language model's ascent by name)."""
    for name, stage in stage_definitions().items():
        files = {str(p.relative_to(REPO)) for p in imported_files(stage_script(stage), "image")}
        assert not [f for f in files if f.startswith("src/memunlearn/modality/text/")], name


READERS_OF_D = {"train", "memorize", "proxies", "partition", "oracle", "unlearn", "evaluate", "grids", "grids_evaluate",
                "forgetting_quality", "tune"}  # the stages that train on D or choose forget sets from it


def test_every_stage_that_reads_d_leaves_out_what_deletion_requests_forgot():
    """Forgotten ids enter no later training (docs/requests.md): a stage that reads D reads it through
    ``without_forgotten`` and lists the ledger as a dep, so a request makes it stale."""
    for name, stage in stage_definitions().items():
        calls = "without_forgotten" in _called(parsed(stage_script(stage)))
        assert calls == (name in READERS_OF_D), f"{name}: reads D without leaving out forgotten ids, or the reverse"
        assert ("requests/ledger.jsonl" in stage["deps"]) == calls, f"{name}: the ledger as a dep"


def test_dvc_fills_the_modality_into_deps(tmp_path):
    """Real DVC reads ``${modality}`` in a dep from params.yaml: the train stage's code is its run's modality's."""
    from dvc.repo import Repo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    Repo.init(str(tmp_path))
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for modality in MODALITIES:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "modality": modality}))
        with Repo(str(tmp_path)) as repo:
            train = next(s for s in repo.index.stages if s.name == "train")
            deps = {str(d.def_path) for d in train.deps}
        assert f"src/memunlearn/modality/{modality}" in deps
        assert not any(d.startswith("src/memunlearn/modality/") and d.endswith(tuple(set(MODALITIES) - {modality}))
                       for d in deps)


def test_removing_a_needed_dep_is_caught():
    stage = stage_definitions()["unlearn"]
    assert not uncovered(stage)
    narrowed = {**stage, "deps": [d for d in stage["deps"] if d != "src/memunlearn/unlearning"]}
    assert any(f.startswith("src/memunlearn/unlearning/") for f in uncovered(narrowed))


def test_the_package_root_holds_no_code():  # why PLUMBING may list it
    assert not imported_names(SRC / PACKAGE / "__init__.py")


def test_imports_are_followed_through_packages_and_relative_imports():
    files = {str(p.relative_to(REPO)) for p in imported_files(STAGES_DIR / "unlearn.py", "image")}
    assert {"stages/_common.py", "src/memunlearn/__init__.py", "src/memunlearn/unlearning/__init__.py",
            "src/memunlearn/unlearning/salun.py",  # imported by unlearning/__init__.py (relative import)
            "src/memunlearn/training/loop.py"} <= files
    assert not any("site-packages" in f for f in files)


@pytest.mark.parametrize("module", sorted((SRC / PACKAGE / "evaluation").glob("*.py")), ids=lambda p: p.name)
def test_metrics_import_nothing_that_unlearns_or_drives_experiments(module):
    files = {str(p.relative_to(REPO)) for p in imported_files(module)}
    above = sorted(f for f in files if f.startswith(("src/memunlearn/unlearning/", "src/memunlearn/experiments/")))
    assert not above, f"{module.relative_to(REPO)} imports {above}: metrics stay below unlearning and experiments"


def test_a_missing_project_module_is_an_error(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from memunlearn.evaluation.nothing_here import x\n")
    with pytest.raises(ImportError, match="memunlearn.evaluation.nothing_here"):
        imported_files(script)


def test_pipelines_are_loaded_by_name_only():
    """No project file imports a modality's pipeline module (pipeline_names accounts for its imports per method
    called, which holds only when load_modality is the one way in)."""
    for path in [*SRC.rglob("*.py"), *STAGES_DIR.glob("*.py")]:
        names = {n for n, _ in _names_of(ast.walk(parsed(path)), path)}
        assert not any(n.startswith(f"{PACKAGE}.modality.") and n.endswith(".pipeline") for n in names), path


def test_a_stage_depends_on_the_methods_it_calls_only():
    """The prepare stage runs no training: the image pipeline's training code is no dep of it."""
    prepare = {str(p.relative_to(REPO)) for p in imported_files(STAGES_DIR / "prepare.py", "image")}
    train = {str(p.relative_to(REPO)) for p in imported_files(STAGES_DIR / "train.py", "image")}
    assert "src/memunlearn/training/loop.py" in train - prepare
    assert "src/memunlearn/modality/image/pipeline.py" in prepare & train


def test_memorize_declares_the_train_keys_its_recipe_reads(tmp_path):
    """The subset models' recipe (recipe_for(params, "subset")) reads every train key but the original-only ones
    (train.init): memorize declares exactly those, so real DVC sees a changed train.init as no change of memorize's
    params and a changed train.lr as one."""
    import dataclasses

    from dvc.repo import Repo

    from memunlearn.training.recipe import ORIGINAL_ONLY, TrainConfig

    declared = stage_definitions()["memorize"]["params"]
    assert "train" not in declared
    assert {p.removeprefix("train.") for p in declared if p.startswith("train.")} == \
        {f.name for f in dataclasses.fields(TrainConfig)} - set(ORIGINAL_ONLY)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    Repo.init(str(tmp_path))
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())

    def memorize_params(**train) -> dict:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "train": {**params["train"], **train}}))
        with Repo(str(tmp_path)) as repo:
            stage = next(s for s in repo.index.stages if s.name == "memorize")
            return {k: v for dep in stage.deps if hasattr(dep, "read_params") for k, v in dep.read_params().items()}

    base = memorize_params()
    assert "train.lr" in base and "train.init" not in base
    assert memorize_params(init="elsewhere.pt") == base
    assert memorize_params(lr=0.5) != base

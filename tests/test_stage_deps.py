"""Every stage's dvc.yaml deps cover the project code its script imports (docs/architecture.md rule 7).

For each stage (matrix and foreach stages included) the stage script named
in its ``cmd`` is parsed with ``ast``; its imports are followed through the
project (``stages/``, ``src/memunlearn/``), package ``__init__`` files
included, since importing ``a.b.c`` runs ``a`` and ``a.b`` first. Every file
reached must lie under a declared dep (a file, or a folder holding it), so
editing code a stage runs always reruns that stage. Plumbing that cannot
change a result is exempt (``PLUMBING``).
"""
from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
STAGES_DIR = REPO / "stages"
PACKAGE = "memunlearn"
# Not deps by design (rule 7): params/paths/tracking glue, MLflow, where `device: auto` lands, the version string,
# class names (model metadata; the figures stage, which draws them, declares the file).
PLUMBING = {"stages/_common.py", "src/memunlearn/tracking.py", "src/memunlearn/devices.py",
            "src/memunlearn/__init__.py", "src/memunlearn/labels.py"}


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


def imported_names(path: Path) -> set[tuple[str, bool]]:
    """(module name, must exist) for every module an import statement of ``path`` may load, function-level
    imports included; ``from pkg import name`` gives ``pkg`` (must exist) and ``pkg.name`` (may be a name)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[tuple[str, bool]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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


def imported_files(script: Path) -> set[Path]:
    """The project files that running ``script`` imports, transitively; parents' ``__init__`` included."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, must_exist in imported_names(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                found = module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
            if must_exist and parts[0] == PACKAGE and module_file(name) is None:
                raise ImportError(f"{path} imports {name}, which is not in src/")
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


def uncovered(stage: dict) -> list[str]:
    """Project files the stage imports that no dep covers (plumbing aside)."""
    files = {str(p.relative_to(REPO)) for p in imported_files(stage_script(stage))}
    deps = [str(d) for d in stage.get("deps", [])]
    return sorted(f for f in files - PLUMBING if not covered(f, deps))


@pytest.mark.parametrize("name", list(stage_definitions()))
def test_stage_deps_cover_the_code_it_imports(name):
    missing = uncovered(stage_definitions()[name])
    assert not missing, f"dvc.yaml stage {name!r} imports {missing} but does not list them (or a folder) in deps"


def test_removing_a_needed_dep_is_caught():
    stage = stage_definitions()["unlearn"]
    assert not uncovered(stage)
    narrowed = {**stage, "deps": [d for d in stage["deps"] if d != "src/memunlearn/unlearning"]}
    assert any(f.startswith("src/memunlearn/unlearning/") for f in uncovered(narrowed))


def test_the_package_root_holds_no_code():  # why PLUMBING may list it
    assert not imported_names(SRC / PACKAGE / "__init__.py")


def test_imports_are_followed_through_packages_and_relative_imports():
    files = {str(p.relative_to(REPO)) for p in imported_files(STAGES_DIR / "unlearn.py")}
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

"""The project's docs live in the repo and are cited by repo path (issue 11, item 4).

- every citation of a ``.py``/``.md``/``.yaml`` file by a repo path (``docs/methods.md``,
  ``src/memunlearn/grid.py``, ``stages/train.py``) or by a path inside the package
  (``training/stacked.py``) names a file that exists;
- no file cites the design notes that live outside the clone;
- every section cited with docs/methods.md is a heading there, every rule cited with
  docs/architecture.md is a numbered rule there.

Scanned: src/, stages/, tests/, benchmarks/, docs/, README.md, dvc.yaml, params.yaml,
Makefile. Outputs that exist only after ``dvc repro`` (data/, metrics/, results/) are never
checked, nor files of other projects named beside their repository.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
PACKAGE = ROOT / "src" / "memunlearn"
METHODS_DOC = ROOT / "docs" / "methods.md"
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"

SCANNED_DIRS = ("src", "stages", "tests", "benchmarks", "docs")
SCANNED_FILES = ("README.md", "dvc.yaml", "params.yaml", "Makefile")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini"}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}

PATH_CHARS = r"[\w./-]"
CITED_FILE = r"\.(?:py|md|yaml)(?![\w-])"  # only files that exist in git, never DVC outputs
# A path from the repo root: starts with one of the repo's source folders.
REPO_PATH = re.compile(rf"(?<!{PATH_CHARS})((?:{'|'.join(SCANNED_DIRS)})/{PATH_CHARS}*?{CITED_FILE})")
# Other projects' files that are cited by a package-like path (the reference implementations).
EXTERNAL = {
    "evaluation/SVC_MIA.py",  # OPTML-Group/Unlearn-Saliency, the SVC MIA (evaluation/mia.py)
}

# Citations of the design notes outside the clone (a user's clone does not have them).
STALE = re.compile(r"\.\./shared\b|\bMETHODS\.md|\bARCHITECTURE\b")
# "docs/methods.md §3", "docs/methods.md §4-5", "docs/methods.md\n§2.1"; the old name counts too
SECTION_CITATION = re.compile(
    r"(?:docs/methods\.md|\bMETHODS\.md)[\s#\"'`*(]*§\s*(\d+(?:\.\d+)*)(?:\s*[-–]\s*(\d+(?:\.\d+)*))?")
RULE_CITATION = re.compile(r"(?:docs/architecture\.md|\bARCHITECTURE)\s+rules?\s+(\d+)")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if any(p in SKIPPED_DIRS or p.startswith(".") or p.endswith(".egg-info") for p in parts):
                continue
            if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
                files.append(path)
    return files


def occurrences(pattern: re.Pattern, files: list[Path]):
    """(file, line number, match) for every match of ``pattern`` in ``files``."""
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in pattern.finditer(text):
            yield path, text.count("\n", 0, match.start()) + 1, match


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def subpackages() -> list[str]:
    return sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def package_path_pattern() -> re.Pattern:
    """A path inside the package, e.g. ``training/stacked.py`` or ``memunlearn/grid.py``."""
    first = "|".join(["memunlearn", *subpackages()])
    return re.compile(rf"(?<!{PATH_CHARS})((?:{first})/{PATH_CHARS}*?\.py)(?![\w-])")


def methods_sections() -> set[str]:
    return set(HEADING.findall(METHODS_DOC.read_text(encoding="utf-8")))


def architecture_rules() -> set[str]:
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    rules = text.split("\n## Rules", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^(\d+)\.\s", rules, re.MULTILINE))


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return scanned_files()


def test_the_docs_exist_and_methods_keeps_its_section_numbers():
    for name in ("methods.md", "architecture.md", "howto.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    expected = {"1", "2", "2.1", "2.2", "2.3", "2.4", "3", "4", "5", "6", "7"}
    assert expected <= methods_sections(), f"docs/methods.md lacks sections {sorted(expected - methods_sections())}"
    assert {str(n) for n in range(1, 11)} <= architecture_rules()


def test_every_cited_repo_path_exists(files):
    missing = [f"{where(path, line)}: {m.group(1)}" for path, line, m in occurrences(REPO_PATH, files)
               if not (ROOT / m.group(1)).exists()]
    assert not missing, ("these files cite repo paths that do not exist (fix the path, or the citation):\n"
                         + "\n".join(missing))


def test_every_cited_package_path_exists(files):
    missing = []
    for path, line, m in occurrences(package_path_pattern(), files):
        cited = m.group(1)
        inside = cited.removeprefix("memunlearn/")
        if cited not in EXTERNAL and not (PACKAGE / inside).exists() and not (ROOT / cited).exists():  # flows/*.py
            missing.append(f"{where(path, line)}: {cited} (no src/memunlearn/{inside})")
    assert not missing, ("these files cite package paths that do not exist (write the repo path, e.g. "
                         "src/memunlearn/..., or add another project's file to EXTERNAL):\n" + "\n".join(missing))


def test_no_file_cites_docs_outside_the_repo(files):
    stale = [f"{where(path, line)}: {m.group(0)}" for path, line, m in occurrences(STALE, files) if path != THIS]
    assert not stale, (f"{len(stale)} citations of the notes outside the clone; cite docs/methods.md or "
                       "docs/architecture.md instead:\n" + "\n".join(stale[:40]))


def test_every_cited_methods_section_is_a_heading(files):
    sections = methods_sections()
    missing = []
    for path, line, m in occurrences(SECTION_CITATION, files):
        for number in filter(None, m.groups()):
            if number not in sections:
                missing.append(f"{where(path, line)}: {m.group(0).strip()} (no section {number})")
    assert not missing, ("these files cite sections docs/methods.md does not have (headings: "
                         f"{sorted(sections)}):\n" + "\n".join(missing))


def test_every_cited_architecture_rule_exists(files):
    rules = architecture_rules()
    missing = [f"{where(path, line)}: {m.group(0)}" for path, line, m in occurrences(RULE_CITATION, files)
               if m.group(1) not in rules]
    assert not missing, f"docs/architecture.md has rules {sorted(rules, key=int)}; cited:\n" + "\n".join(missing)


def test_the_checks_see_what_they_should():
    """The patterns find the citations they are meant to and leave DVC outputs and other projects alone."""
    text = ("see docs/methods.md §4-5 and `src/memunlearn/grid.py`; writes results/claims.md and "
            "data/prepared/meta.json; OPTML-Group/Unlearn-Saliency Classification/evaluation/SVC_MIA.py")
    assert [m.group(1) for m in REPO_PATH.finditer(text)] == ["docs/methods.md", "src/memunlearn/grid.py"]
    assert [m.groups() for m in SECTION_CITATION.finditer(text)] == [("4", "5")]
    assert not package_path_pattern().findall("Classification/evaluation/SVC_MIA.py, results/sweep/x.json")
    assert package_path_pattern().findall("(training/stacked.py)") == ["training/stacked.py"]
    assert STALE.search("the ../shared notes") and not STALE.search("docs/methods.md §3")

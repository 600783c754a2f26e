"""The project's docs live in the repo and are cited by repo path (issue 11, item 4).

- every citation of a ``.py``/``.md``/``.yaml`` file by a repo path (``docs/methods.md``,
  ``src/memunlearn/grid.py``, ``stages/train.py``) or by a path inside the package
  (``training/stacked.py``) names a file that exists;
- no file cites the design notes that live outside the clone;
- every section cited with docs/methods.md is a heading there, every rule cited with
  docs/architecture.md is a numbered rule there;
- every section cited by name with a docs page (`docs/params.md`, "Ablations") begins a heading
  of that page;
- the README is a front door (at most ~15 KB) that names the quick start's commands and the docs
  index; every relative link in README.md and docs/ reaches a file (and a heading, with an anchor);
  the index links every page of docs/; user-facing docs name the papers, never a file label
  ("seed 003").

Scanned: src/, stages/, flows/, tests/, benchmarks/, docs/, README.md, data/README.md, dvc.yaml, params.yaml,
Makefile. Outputs that exist only after ``dvc repro`` (data/, metrics/, results/) are never
checked, nor files of other projects named beside their repository.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOCS_INDEX = DOCS / "README.md"
README_MAX_BYTES = 16_000  # the front door: what it is, quick start, glossary, pipeline, commands, links
THIS = Path(__file__).resolve()
PACKAGE = ROOT / "src" / "memunlearn"
METHODS_DOC = ROOT / "docs" / "methods.md"
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"

SCANNED_DIRS = ("src", "stages", "flows", "tests", "benchmarks", "docs")
SCANNED_FILES = ("README.md", "data/README.md", "dvc.yaml", "params.yaml", "Makefile")
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
# `docs/params.md`, "Ablations" (the quoted name begins a heading of that page; the line may break)
NAMED_SECTION = re.compile(r"(docs/[\w-]+\.md)`?,?\s*\(?\"([^\"\n]+)\"")
ANY_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
# a relative Markdown link: [text](target) with no scheme
LINK = re.compile(r"\[[^\]\n]*\]\((?![a-z][a-z0-9+.-]*:)([^)\s]+)\)")
# the internal label of the first-epoch gradient ascent paper; file and code names (text_seed003.py) excepted
FILE_LABEL = re.compile(r"\bseed[ -]0*03\b", re.IGNORECASE)


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


def headings(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return ANY_HEADING.findall(text)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_docs_exist_and_methods_keeps_its_section_numbers():
    for name in ("README.md", "methods.md", "architecture.md", "howto.md", "results.md", "text.md",
                 "params.md", "operations.md", "benchmarks.md"):
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
    assert not package_path_pattern().findall("Classification/evaluation/SVC_MIA.py, results/grids/x.json")
    assert package_path_pattern().findall("(training/stacked.py)") == ["training/stacked.py"]
    assert STALE.search("the ../shared notes") and not STALE.search("docs/methods.md §3")


def test_every_section_cited_by_name_is_a_heading_of_its_page(files):
    missing = []
    for path, line, m in occurrences(NAMED_SECTION, files):
        page, name = ROOT / m.group(1), m.group(2)
        if path == THIS or not page.is_file():
            continue  # a missing page is test_every_cited_repo_path_exists's to report
        if not any(h.lower().startswith(name.lower()) for h in headings(page)):
            missing.append(f"{where(path, line)}: {m.group(1)}, \"{name}\" (headings: {headings(page)})")
    assert not missing, "these citations name a section their page does not have:\n" + "\n".join(missing)


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for path, line, m in occurrences(LINK, markdown_pages()):
        target, _, fragment = m.group(1).partition("#")
        page = (path.parent / target).resolve() if target else path
        if not page.exists():
            broken.append(f"{where(path, line)}: {m.group(1)} (no file {page})")
        elif fragment and page.suffix == ".md" and fragment not in {anchor(h) for h in headings(page)}:
            broken.append(f"{where(path, line)}: {m.group(1)} (no heading with anchor #{fragment} in "
                          f"{page.relative_to(ROOT)})")
    assert not broken, "these links lead nowhere (fix the target or the heading):\n" + "\n".join(broken)


def test_the_readme_is_a_front_door_and_the_index_lists_every_page():
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size <= README_MAX_BYTES, (f"README.md is {size} bytes (at most {README_MAX_BYTES}): move reference "
                                      "text into a docs/ page and link it")
    for command in ("make run", "make test"):  # .ci/run runs the quick start's commands
        assert re.search(rf"^{command}\b", text, re.MULTILINE), f"README.md's quick start lacks `{command}`"
    assert "## Glossary" in text and "docs/README.md" in text, "README.md lacks its glossary or the docs index"
    index = DOCS_INDEX.read_text(encoding="utf-8")
    linked = {(DOCS_INDEX.parent / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(index)}
    unlisted = [p.name for p in sorted(DOCS.glob("*.md")) if p != DOCS_INDEX and p.resolve() not in linked]
    assert not unlisted, f"docs/README.md does not link these pages: {unlisted}"


def test_the_docs_name_papers_not_file_labels():
    labels = [f"{where(path, line)}: {m.group(0)}" for path, line, m in occurrences(FILE_LABEL, markdown_pages())]
    assert not labels, ("name the paper (*A More Practical Approach to Machine Unlearning*) or the method "
                        "(first-epoch gradient ascent), not its file label:\n" + "\n".join(labels))


def test_the_docs_checks_see_what_they_should():
    """The link, anchor, named-section and label patterns find what they are meant to, and no more."""
    text = 'see [the glossary](../README.md#glossary), [PyPI](https://pypi.org) and `docs/params.md`,\n"Ablations"'
    assert [m.group(1) for m in LINK.finditer(text)] == ["../README.md#glossary"]
    assert [m.groups() for m in NAMED_SECTION.finditer(text)] == [("docs/params.md", "Ablations")]
    assert anchor("At full size (`make full`)") == "at-full-size-make-full"
    assert anchor("Figures, plots and the most memorized examples") == "figures-plots-and-the-most-memorized-examples"
    assert FILE_LABEL.search("Seed 003's findings") and FILE_LABEL.search("seed-003")
    assert not FILE_LABEL.search("text_seed003.py") and not FILE_LABEL.search("seed 0, 1 and 2")


def test_git_keeps_data_readme_and_ignores_the_rest_of_data():
    """data/README.md (what each stage writes there, what is safe to delete) is the one file of data/ in git."""
    import subprocess

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "data/README.md", "data/prepared/meta.json",
                              "data/.gitignore", "data/oracle_cache/x/model.pt"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ignored == ["data/prepared/meta.json", "data/.gitignore", "data/oracle_cache/x/model.pt"]
    readme = (ROOT / "data/README.md").read_text()
    folders = {out.split("/")[1] for out in re.findall(r"^\s+- (data/[\w_]+)(?![\w.])", (ROOT / "dvc.yaml").read_text(),
                                                           re.MULTILINE) if out.count("/") == 1}
    missing = sorted(f for f in folders if f"`{f}/`" not in readme)
    assert not missing, f"data/README.md does not say what these DVC folders under data/ hold: {missing}"

"""Which project source a result depends on, and a fingerprint of it.

``imported_files`` follows the project's own imports (``from ..x import y``,
``from . import z``, ``import memunlearn.x``) statically from an entry
module: the files whose code can run when the entry module's functions do.
``source_fingerprint`` hashes their syntax trees, so a comment or
formatting edit keeps the fingerprint and any code edit changes it. The
memorization store keys subset models with it (a code change retrains them,
an edit elsewhere reuses them), and a test checks DVC's deps with it.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent  # src/memunlearn
PACKAGE = PACKAGE_ROOT.name


def _module_file(parts: list[str], root: Path) -> Path | None:
    """The file of module ``parts`` (relative to the package root): ``a/b.py`` or ``a/b/__init__.py``."""
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[Path]:
    """Project files that ``path`` imports directly (a name imported from a package may be a submodule)."""
    package = list(path.relative_to(root).parent.parts)
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from ..x import y
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
            elif node.module and node.module.split(".")[0] == PACKAGE:
                base = []
            else:
                continue
            module = base + (node.module.split(".") if node.module else [])
            if not node.level:
                module = module[1:]  # drop "memunlearn"
            target = _module_file(module, root)
            if target is not None:
                found.add(target)
            for alias in node.names:  # from . import resnet, small_cnn: submodules
                sub = _module_file(module + [alias.name], root)
                if sub is not None:
                    found.add(sub)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    target = _module_file(parts[1:], root)
                    if target is not None:
                        found.add(target)
    return found


def imported_files(*entries: Path, root: Path = PACKAGE_ROOT) -> list[Path]:
    """``entries`` and every project file they import, transitively; sorted."""
    seen: set[Path] = set()
    todo = [Path(e).resolve() for e in entries]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path, root) - seen)
    return sorted(seen)


def source_fingerprint(files: list[Path], root: Path = PACKAGE_ROOT) -> str:
    """16 hex digits over each file's path (relative to ``root``) and syntax tree (comments don't count)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(ast.dump(ast.parse(path.read_text())).encode())
    return digest.hexdigest()[:16]

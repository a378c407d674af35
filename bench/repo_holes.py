"""Holes for the repo-level benchmark (`bench/repo.py`): real packages, and the statement lines
in them that use a name imported from another module of the same package.

CrossCodeEval's idea (Ding et al., 2023): a line that uses a name defined in another file of the
project is where a model needs that file. Packages come from PyPI as sdists (source, not wheels:
what a user has checked out), pinned, downloaded once with pip into
`~/.cache/ghostfill/bench-repos/` and unpacked there; a directory path stands for a project
already on disk (tests use a tiny package in a temporary folder).

A hole is a statement inside a function body that sits on one physical line, is not trivial
(at least `MIN_CHARS` characters, not a bare `return X`, no comment, no `;`) and mentions a
name bound by an intra-package import of its file (`from .m import X`, `from pkg.m import X`,
`from . import m`, `import pkg.m as m`). The module that defines the name is found by following
the import (and up to two re-exports through a package `__init__.py`); a hole needs that module
to be another file of the package, since it is the file a user would open beside it.
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

#: Packages of different styles, pinned. Tuned on: attrs (class decorators, src layout),
#: click (a large src-layout package), itsdangerous (small), h11 (a state machine in private
#: modules). Reported on, never tuned on: httpx (private `_modules`, clients and models),
#: markdown (`from . import util` module imports, an extensions subpackage), tomlkit (a
#: document model of many small classes).
PACKAGES: dict[str, tuple[str, ...]] = {
    "tune": ("attrs==23.2.0", "click==8.1.7", "itsdangerous==2.2.0", "h11==0.14.0"),
    "report": ("httpx==0.27.0", "markdown==3.6", "tomlkit==0.12.5"),
}
CACHE = Path(os.environ.get("GHOSTFILL_BENCH_REPOS",
                            Path.home() / ".cache" / "ghostfill" / "bench-repos"))
#: A hole's text (after the indentation) is at least this long, and at most `MAX_CHARS`.
MIN_CHARS = 12
MAX_CHARS = 120
#: Folders inside a package that are not its code.
SKIP_DIRS = frozenset({"tests", "test", "testing", "docs", "examples", "benchmarks", "fuzz"})
#: Re-exports followed from the imported module to the one that defines the name.
MAX_HOPS = 2


@dataclass(frozen=True)
class Project:
    """One unpacked project: `root` is the workspace folder (the sdist's top folder), `base`
    the folder its top-level packages sit in (`root` or `root/src`)."""

    spec: str  # "name==version", or the path given
    root: Path
    base: Path
    packages: tuple[str, ...]  # top-level import packages

    @property
    def name(self) -> str:
        return self.spec.split("==")[0] if "==" in self.spec else self.root.name


@dataclass(frozen=True)
class Hole:
    id: str  # "<project>:<file>:<line>", line 1-based as an editor shows it
    project: str
    file: str  # relative to the project root, POSIX
    line: int  # 0-based
    column: int  # the indentation: where the cursor sits on the erased line
    truth: str  # the erased text (the line after its indentation)
    name: str  # the imported name the line uses, as the file refers to it
    module: str  # dotted module the import names
    defined_in: str  # the file that defines the name (relative to the root, POSIX)
    kind: str  # "name" (`from m import X`) or "module" (`from . import m`, `import a.m as m`)


# -- packages ------------------------------------------------------------------------------
def fetch(spec: str, cache: Path = CACHE) -> Project:
    """The project for `spec`: a directory as it is, or `name==version` downloaded as an sdist
    (once) and unpacked under `cache`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return project(spec, path.resolve())
    if "==" not in spec:
        raise SystemExit(f"{spec}: neither a directory nor name==version")
    name, version = spec.split("==", 1)
    unpacked = cache / f"{name.lower()}-{version}"
    if not unpacked.is_dir():
        downloads = cache / "sdists"
        downloads.mkdir(parents=True, exist_ok=True)
        archive = _sdist(downloads, name, version)
        if archive is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--no-binary", ":all:", f"{name}=={version}", "-d",
                            str(downloads)], check=True)
            archive = _sdist(downloads, name, version)
        if archive is None:
            raise SystemExit(f"{spec}: pip downloaded no sdist into {downloads}")
        _unpack(archive, unpacked)
    [top] = [p for p in unpacked.iterdir() if p.is_dir()]
    return project(spec, top)


def _sdist(folder: Path, name: str, version: str) -> Path | None:
    """The downloaded archive of name==version (sdists spell the name in several ways)."""
    wanted = {name.lower(), name.lower().replace("-", "_"), name.lower().replace("_", "-")}
    for archive in sorted(folder.glob("*.tar.gz")):
        stem = archive.name[: -len(".tar.gz")]
        pname, _, pversion = stem.rpartition("-")
        if pversion == version and pname.lower() in wanted:
            return archive
    return None


def _unpack(archive: Path, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    partial.rename(dest)


def project(spec: str, root: Path) -> Project:
    """Find the top-level packages of a project folder (under it or under its `src/`)."""
    for base in (root / "src", root):
        found = tuple(sorted(p.name for p in base.iterdir() if p.is_dir()
                             and (p / "__init__.py").is_file() and p.name not in SKIP_DIRS
                             and p.name.isidentifier())) if base.is_dir() else ()
        if found:
            return Project(spec, root, base, found)
    raise SystemExit(f"{root}: no Python package in it (nor in its src/)")


def modules(proj: Project) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages (tests and docs
    folders left out)."""
    out: dict[str, Path] = {}
    for package in proj.packages:
        for path in sorted((proj.base / package).rglob("*.py")):
            rel = path.relative_to(proj.base)
            if any(part in SKIP_DIRS for part in rel.parts[:-1]):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if all(p.isidentifier() for p in parts):
                out[".".join(parts)] = path
    return out


# -- holes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Bound:
    local: str
    module: str
    name: str | None  # None: the import binds a module
    defined_in: Path


def intra_imports(tree: ast.Module, module: str, is_package: bool,
                  table: dict[str, Path]) -> list[_Bound]:
    """Names the module's top-level imports (also inside `if`/`try` at the top) bind from other
    modules of the same project, with the file that defines each."""
    out: list[_Bound] = []
    for node in _top_level(tree.body):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if target is None or (target not in table and not any(
                    f"{target}.{a.name}" in table for a in node.names)):
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                sub = f"{target}.{alias.name}"
                if sub in table:
                    out.append(_Bound(local, sub, None, table[sub]))
                elif target in table:
                    where = _defining_file(target, alias.name, table)
                    if where is not None:
                        out.append(_Bound(local, target, alias.name, where))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in table:  # `import pkg.m as m`
                    out.append(_Bound(alias.asname, alias.name, None, table[alias.name]))
    return out


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If | ast.Try):
            out.extend(_top_level(node.body + node.orelse))
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    out.extend(_top_level(handler.body))
    return out


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(parts) - 1:
        return None
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _defining_file(module: str, name: str, table: dict[str, Path],
                   hops: int = MAX_HOPS) -> Path | None:
    """The file that defines `name` at the top of `module`, following re-exports."""
    path = table[module]
    tree = _parse(path)
    if tree is None:
        return None
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return path
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return path
    if hops <= 0:
        return None
    is_package = path.name == "__init__.py"
    for node in _top_level(tree.body):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            for alias in node.names:
                if (alias.asname or alias.name) == name and target in table:
                    return _defining_file(target, alias.name, table, hops - 1)
    return None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None


def holes_in(proj: Project) -> list[Hole]:
    """Every hole of the project, in file and line order."""
    table = modules(proj)
    out: list[Hole] = []
    for module, path in sorted(table.items(), key=lambda kv: str(kv[1])):
        tree = _parse(path)
        if tree is None:
            continue
        bound = {b.local: b for b in intra_imports(tree, module, path.name == "__init__.py",
                                                    table) if b.defined_in != path}
        if not bound:
            continue
        rows = path.read_text(encoding="utf-8").split("\n")
        rel = path.relative_to(proj.root).as_posix()
        seen: set[int] = set()
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for stmt in _simple_statements(func.body):
                line = stmt.lineno - 1
                if line in seen or stmt.end_lineno != stmt.lineno:
                    continue
                used = _uses(stmt, bound)
                row = rows[line]
                column = len(row) - len(row.lstrip())
                text = row[column:]
                if used is None or not _worth(stmt, text, column, used.local):
                    continue
                seen.add(line)
                b = used
                out.append(Hole(f"{proj.name}:{rel}:{line + 1}", proj.name, rel, line, column,
                                text, b.local, b.module,
                                b.defined_in.relative_to(proj.root).as_posix(),
                                "module" if b.name is None else "name"))
    return out


def _simple_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements of a function body, nested blocks included, but not nested functions and
    classes (they are walked as functions of their own)."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        blocks = [getattr(node, f, None) for f in ("body", "orelse", "finalbody")]
        nested = [b for b in blocks if isinstance(b, list)]
        if isinstance(node, ast.Try):
            nested += [h.body for h in node.handlers]
        if isinstance(node, ast.Match):
            nested += [c.body for c in node.cases]
        if nested:  # a compound statement: its header is not a hole, its body may hold some
            for block in nested:
                out.extend(_simple_statements(block))
        else:
            out.append(node)
    return out


def _uses(stmt: ast.stmt, bound: dict[str, _Bound]) -> _Bound | None:
    """The first imported name the statement reads (source order)."""
    names = sorted((n.col_offset, n.id) for n in ast.walk(stmt)
                   if isinstance(n, ast.Name) and n.id in bound)
    return bound[names[0][1]] if names else None


def _worth(stmt: ast.stmt, text: str, column: int, name: str) -> bool:
    if isinstance(stmt, ast.Import | ast.ImportFrom | ast.Pass | ast.Break | ast.Continue
                  | ast.Global | ast.Nonlocal):
        return False
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return False  # a docstring
    if stmt.col_offset != column or column == 0:
        return False
    if not MIN_CHARS <= len(text) <= MAX_CHARS or "#" in text or text.endswith((";", "\\")):
        return False
    return text not in (f"return {name}", f"raise {name}", f"yield {name}")


def sample(holes_by_project: dict[str, list[Hole]], count: int, seed: int,
           per_file: int = 3) -> list[Hole]:
    """`count` holes, deterministic for a seed: each project's holes shuffled, at most
    `per_file` from one file, taken round-robin across projects so each gets a fair share."""
    rng = random.Random(seed)
    queues: list[list[Hole]] = []
    for name in sorted(holes_by_project):
        pool = list(holes_by_project[name])
        rng.shuffle(pool)
        taken: dict[str, int] = {}
        queue = []
        for hole in pool:
            if taken.get(hole.file, 0) < per_file:
                taken[hole.file] = taken.get(hole.file, 0) + 1
                queue.append(hole)
        queues.append(queue)
    return round_robin(queues, count)


T = TypeVar("T")


def round_robin(queues: list[list[T]], count: int) -> list[T]:
    """At most `count` items, one from each queue in turn, so each gets a fair share."""
    out: list[T] = []
    while len(out) < count and any(queues):
        for queue in queues:
            if queue and len(out) < count:
                out.append(queue.pop(0))
    return out


def erase(text: str, hole: Hole) -> str:
    """The file with the hole's line emptied after its indentation (where an editor puts the
    cursor on a fresh line)."""
    rows = text.split("\n")
    rows[hole.line] = rows[hole.line][: hole.column]
    return "\n".join(rows)

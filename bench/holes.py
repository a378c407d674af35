"""HumanEval infilling tasks: load the single-line set and derive multi-line holes from it.

A task is a program with a hole of whole lines: `prompt` (the text before the hole, ending at a
line start), `canonical` (the hole's reference lines, ending with a newline) and `suffix`.
The single-line file already has that shape. Multi-line holes are cut from the same programs
(prompt + canonical solution + suffix), so the two benchmarks differ only in the hole: a block
body, or 2-4 consecutive lines of whole statements inside the function under test. Holes are
whole statements because a hole that splits a statement in two measures the tokenizer's luck
more than the model.
"""

from __future__ import annotations

import ast
import gzip
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

from ghostfill.errors import GhostfillError

REQUIRED_KEYS = ("task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point")
MAX_BLOCK_LINES = 8  # a block body longer than this is more than a completion shows
RUN_LINES = (2, 4)  # consecutive whole-statement lines in a "lines" hole


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # text before the hole; ends at the start of a line
    suffix: str  # text after the hole
    canonical: str  # the hole: whole lines, ending with "\n"
    test: str  # defines check(candidate)
    entry_point: str
    kind: str = "single"  # single | block | lines

    @property
    def program(self) -> str:
        return self.prompt + self.canonical + self.suffix

    @property
    def problem(self) -> str:
        """`SingleLineInfilling/HumanEval/0/L3` -> `HumanEval/0`: tasks cut from one program."""
        parts = self.task_id.split("/")
        if len(parts) >= 3 and parts[-1].startswith("L"):
            return "/".join(parts[1:-1])
        return self.task_id

    @property
    def hole_lines(self) -> tuple[int, int]:
        """First and last line of the hole, 1-based."""
        first = self.prompt.count("\n") + 1
        return first, first + max(1, self.canonical.count("\n")) - 1

    @property
    def multiline(self) -> bool:
        return self.canonical.rstrip("\n").count("\n") > 0

    def to_dict(self) -> dict[str, object]:
        return {
            "task_id": self.task_id,
            "entry_point": self.entry_point,
            "kind": self.kind,
            "hole_lines": list(self.hole_lines),
            "canonical": self.canonical,
        }


def load_tasks(path: Path) -> list[Task]:
    """Read a HumanEval-infilling JSONL file (gzip or plain)."""
    if not path.is_file():
        raise GhostfillError(f"no such data file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    tasks = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    tasks.append(_task(json.loads(line), path, number))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GhostfillError(f"cannot read {path}: {e}") from e
    if not tasks:
        raise GhostfillError(f"{path} holds no tasks")
    return tasks


def _task(row: dict[str, object], path: Path, number: int) -> Task:
    missing = [k for k in REQUIRED_KEYS if not isinstance(row.get(k), str)]
    if missing:
        raise GhostfillError(f"{path}:{number}: missing or non-text keys: {', '.join(missing)}")
    canonical = str(row["canonical_solution"])
    suffix = str(row["suffix"])
    if not canonical.endswith("\n"):
        # Keep the whole-line shape the splicing relies on.
        canonical += "\n"
        suffix = suffix[1:] if suffix.startswith("\n") else suffix
    return Task(
        task_id=str(row["task_id"]),
        prompt=str(row["prompt"]),
        suffix=suffix,
        canonical=canonical,
        test=str(row["test"]),
        entry_point=str(row["entry_point"]),
    )


def sample_tasks(tasks: list[Task], limit: int | None, seed: int | None) -> list[Task]:
    """The first `limit` tasks, or with a seed a random sample of `limit` (kept in file order,
    so tasks from one program stay together, as they would in one editing session)."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    if seed is None:
        return list(tasks[:limit])
    chosen = sorted(random.Random(seed).sample(range(len(tasks)), limit))
    return [tasks[i] for i in chosen]


def multi_line_holes(tasks: list[Task], seed: int) -> list[Task]:
    """One multi-line hole per program, chosen with `seed` (same seed, same holes)."""
    programs: dict[str, Task] = {}
    for task in tasks:
        programs.setdefault(task.problem, task)
    holes = []
    for problem, task in programs.items():
        program = task.program if task.program.endswith("\n") else task.program + "\n"
        candidates = hole_candidates(program, task.entry_point)
        if not candidates:
            continue
        rng = random.Random(f"{seed}/{problem}")
        blocks = [c for c in candidates if c[2] == "block"]
        runs = [c for c in candidates if c[2] == "lines"]
        pool = blocks if blocks and (not runs or rng.random() < 0.5) else runs
        first, last, kind = rng.choice(pool)
        holes.append(cut_hole(task, program, first, last, kind))
    return holes


def cut_hole(task: Task, program: str, first: int, last: int, kind: str) -> Task:
    """A task whose hole is lines `first`..`last` (1-based, inclusive) of `program`."""
    lines = program.splitlines(keepends=True)
    return replace(
        task,
        task_id=f"MultiLineInfilling/{task.problem}/L{first}-{last}",
        prompt="".join(lines[: first - 1]),
        canonical="".join(lines[first - 1 : last]),
        suffix="".join(lines[last:]),
        kind=kind,
    )


def hole_candidates(program: str, entry_point: str) -> list[tuple[int, int, str]]:
    """(first, last, kind) line spans of whole statements inside `entry_point`'s body:
    block bodies of 2..MAX_BLOCK_LINES lines and runs of sibling statements of 2-4 lines.
    Nothing from the docstring, and no span that shares a line with code outside it."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return []
    function = next(
        (n for n in ast.walk(tree)
         if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == entry_point),
        None,
    )
    if function is None:
        return []
    lines = program.split("\n")
    found: set[tuple[int, int, str]] = set()
    for body in _statement_lists(function):
        if body is function.body and _is_docstring(body[0]):
            body = body[1:]
        starts = [_starts_line(s, lines) for s in body]
        ends = [_ends_line(s, lines) for s in body]
        if body and starts[0] and ends[-1]:
            first, last = body[0].lineno, _end(body[-1])
            if 2 <= last - first + 1 <= MAX_BLOCK_LINES:
                found.add((first, last, "block"))
        for i in range(len(body)):
            if not starts[i]:
                continue
            for j in range(i, len(body)):
                size = _end(body[j]) - body[i].lineno + 1
                if size > RUN_LINES[1]:
                    break
                if ends[j] and size >= RUN_LINES[0]:
                    found.add((body[i].lineno, _end(body[j]), "lines"))
    return sorted(found)


def _statement_lists(function: ast.AST) -> list[list[ast.stmt]]:
    """The statements of every block inside `function`, its own body included."""
    lists: list[list[ast.stmt]] = []
    for node in ast.walk(function):
        if not isinstance(node, ast.stmt | ast.ExceptHandler):
            continue
        if node is not function and isinstance(node, ast.FunctionDef | ast.ClassDef):
            continue  # nested definitions: their own scope, not the function under test
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                lists.append(body)
    return lists


def _starts_line(node: ast.stmt, lines: list[str]) -> bool:
    """Nothing but indentation before `node` on its first line (not `if x: y`, not `a; b`).
    AST columns count UTF-8 bytes."""
    line = lines[node.lineno - 1].encode("utf-8")
    return not line[: node.col_offset].strip()


def _ends_line(node: ast.stmt, lines: list[str]) -> bool:
    """Nothing but whitespace or a comment after `node` on its last line."""
    line = lines[_end(node) - 1].encode("utf-8")
    rest = line[node.end_col_offset or len(line) :].strip()
    return not rest or rest.startswith(b"#")


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _end(node: ast.stmt) -> int:
    return int(node.end_lineno or node.lineno)

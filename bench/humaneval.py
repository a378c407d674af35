"""HumanEval infilling through the real completion pipeline, next to the raw model.

Every task goes the way an editor request goes: the document is the program with the hole
taken out, the cursor sits where the hole was, and `CompletionEngine.prepare` + `run` produce
the text (window, template, stop rules and post-processing included). Configurations:

  * `raw`: the same backend and model, prompted with the prefix alone (BOS + prefix tokens),
    greedy, the same token limit, no stop rules and no filters, only the minimal cut a client
    needs: the first newline for single-line holes, the first blank line for multi-line holes.
    Only the pipeline differs, so the comparison measures the pipeline and not the model.
  * `pipeline`: ghostfill as the editor runs it.
  * `pipeline-no-<filter>`: the pipeline with one post-processing filter switched off
    (`disabled_filters`), to see what each filter is worth.
  * `pipeline-suffix-before`, `pipeline-suffix-<n>-lines`, `pipeline-suffix-none`: the pipeline
    with `completion.suffixLayout` "before-prefix" (the whole suffix window, or its first n
    lines) or "none": where a model without FIM tokens sees the code after the cursor (#18).
  * `pipeline-invoked`: the pipeline as a request the user asked for (`run_choices`, its first
    suggestion): with a prefix-only model, the answer is checked against the code below the
    cursor (`completion.suffixCheck`, #18), and a block is the first of the blocks weighed
    against it (`completion.blockCandidates`). Otherwise the same as `pipeline`.
  * `pipeline-mid-line`: the pipeline as it was before insertions before code (#18): a cursor
    in the leading whitespace of a line that holds code is treated as a cursor inside that
    line (one line, no line break; with `multiline="auto"` exactly the old behaviour). In the
    open-line layout it is the pipeline.

Generation is greedy and the filters run after it, so an ablation's text is the pipeline's
model output post-processed without that filter: by default (`ablation_mode="reuse"`) the
ablations re-run `postprocess` on the pipeline's generation instead of generating again,
which is what `engine.run(disabled_filters=...)` does and costs a few milliseconds instead of
a generation; `"rerun"` calls `engine.run` for each ablation.

Scores: exact match (stripped non-blank lines equal), functional pass@1 (the task's `test`
and `check(entry_point)` run on prefix + completion + suffix in a subprocess with a timeout and
CPU/memory limits), whether that program compiles, the answer's non-blank lines, and latency
per task (prepare + run, from before the prompt is built to the final text; scored after all
generation, so test runs never compete with the model for the CPU).

The document layout: a whole-line hole is, in an editor, an empty line the user is about to
write (`open-line`: prompt + "\\n" + suffix, cursor at the start of the empty line; the
completion is spliced back as whole lines). `as-given` is the task exactly as given: prompt +
suffix, the cursor at column 0 of the line the suffix starts with, so the code of that line
follows the cursor; the pipeline's answer is spliced back exactly as accepting it in an editor
inserts it (prompt + answer + suffix: an answer without a final line break joins that line,
counted as `joins`). The raw baseline is the model's own answer and is spliced as whole lines
in both layouts (see `splice`).

The model runs in this process by default (`Options.engine`): a shared engine process started
earlier may run older code, whose stop rules would then be measured instead of the checkout's.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ghostfill.backends.base import GenerationRequest, PromptParts
from ghostfill.bench.holes import Task, load_tasks, multi_line_holes, sample_tasks
from ghostfill.completion.filters.layout import is_before_code
from ghostfill.completion.postprocess import FILTERS, postprocess
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.errors import GhostfillError

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("GHOSTFILL_DATA_DIR", ROOT.parent / "shared" / "data"))
DEFAULT_DATA = DATA_DIR / "HumanEval-SingleLineInfilling.jsonl.gz"
SCHEMA = "ghostfill.bench.humaneval/1"
RAW, PIPELINE, ABLATION = "raw", "pipeline", "pipeline-no-"
#: The pipeline without further tries after the filters reject an answer
#: (`completion.alternatives = 0`): generates again, unlike the filter ablations.
ONE_TRY = "pipeline-one-try"
#: The pipeline without the handling of insertions before code (see the module docstring).
MID_LINE = "pipeline-mid-line"
#: The pipeline as an invoked request (see the module docstring).
INVOKED = "pipeline-invoked"
#: The pipeline with other settings, side by side with `pipeline` in one run: where a model
#: without FIM tokens sees the suffix (`completion.suffixLayout`, issue #18).
VARIANTS: dict[str, dict[str, Any]] = {
    "pipeline-suffix-before": {"completion": {"suffix_layout": "before-prefix"}},
    "pipeline-suffix-8-lines": {"completion": {"suffix_layout": "before-prefix"},
                                "context": {"suffix_block_lines": 8}},
    "pipeline-suffix-none": {"completion": {"suffix_layout": "none"}},
}
SINGLE_MAX_TOKENS, MULTI_MAX_TOKENS = 64, 128
PASS_MARK = "__ghostfill_check_passed__"
CHUNK = 10  # tasks per turn of each configuration (see generate_all)

Holes = Literal["single", "multi"]
Log = Callable[[str], None]


def default_results_dir() -> Path:
    base = ROOT if (ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / "bench" / "results"


def all_configs() -> list[str]:
    return [RAW, PIPELINE, INVOKED, ONE_TRY, MID_LINE, *VARIANTS,
            *(ABLATION + name for name, _ in FILTERS)]


def parse_configs(spec: str) -> list[str]:
    """`all`, `ablations`, or a comma list of configuration names (order kept)."""
    known = all_configs()
    ablations = [name for name in known if name.startswith(ABLATION)]
    chosen: list[str] = []
    for word in (w.strip() for w in spec.split(",")):
        names = {"all": known, "ablations": ablations}.get(word, [word] if word else [])
        for name in names:
            if name not in known:
                raise GhostfillError(f"unknown configuration '{name}' (known: "
                                     f"all, ablations, {', '.join(known)})")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise GhostfillError("no configuration chosen")
    return chosen


@dataclass
class Options:
    data: Path = DEFAULT_DATA
    holes: Holes = "single"
    limit: int | None = None
    seed: int | None = None
    model: str | None = None
    backend: str | None = None
    max_tokens: int | None = None  # None: 64 for single-line holes, 128 for multi-line
    configs: list[str] = field(default_factory=all_configs)
    out: Path = field(default_factory=default_results_dir)
    jobs: int = 2
    timeout_s: float = 10.0
    memory_mb: int = 1024
    budget_ms: int | None = None  # None: no deadline, scores do not depend on machine load
    document: Literal["open-line", "as-given"] = "open-line"
    multiline: Literal["hole", "auto"] = "hole"  # hole: tell prepare() the hole's kind
    #: Where the model runs (`server.engine`); see the module docstring.
    engine: Literal["inprocess", "shared", "private"] = "inprocess"
    ablation_mode: Literal["reuse", "rerun"] = "reuse"
    plots: bool = True
    #: Only these task ids of the selection (a rerun of the tasks a change is meant to touch).
    only: frozenset[str] = frozenset()

    @property
    def tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return MULTI_MAX_TOKENS if self.holes == "multi" else SINGLE_MAX_TOKENS


@dataclass
class Attempt:
    """One configuration's answer for one task."""

    text: str
    raw: str
    stop_reason: str
    latency_ms: float
    timings: dict[str, float] = field(default_factory=dict)
    exact: bool = False
    syntax_ok: bool = False  # the spliced program compiles
    #: Accepting the answer joins its last line with the code after the cursor (as-given).
    joins: bool = False
    passed: bool = False
    status: str = "pending"  # passed | failed | timeout
    detail: str = ""
    #: What this request left in the KV cache (prompt + generated tokens); not written out.
    cache: list[int] = field(default_factory=list, repr=False)
    #: The suffix check's decision (`CompletionEngine.suffix_checked`), when it ran.
    suffix_check: dict[str, Any] | None = None
    #: The order of an invoked request's blocks (`CompletionEngine.ranked_blocks`), when
    #: they were weighed.
    block_rank: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "raw": self.raw, "exact": self.exact, "passed": self.passed,
            "syntax_ok": self.syntax_ok, "joins": self.joins,
            "status": self.status, "detail": self.detail, "stop_reason": self.stop_reason,
            "latency_ms": round(self.latency_ms, 2), "timings": self.timings,
            **({"suffix_check": self.suffix_check} if self.suffix_check else {}),
            **({"block_rank": self.block_rank} if self.block_rank else {}),
        }


@dataclass
class Report:
    path: Path
    data: dict[str, Any]
    plots: list[Path]

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        return self.data["summary"]


# --- tasks -------------------------------------------------------------------------------


def select_tasks(options: Options) -> list[Task]:
    tasks = load_tasks(options.data)
    if options.holes == "multi":
        tasks = multi_line_holes(tasks, options.seed or 0)
    tasks = sample_tasks(tasks, options.limit, options.seed)
    if options.only:
        missing = options.only - {task.task_id for task in tasks}
        if missing:
            raise GhostfillError(f"not in the selection: {', '.join(sorted(missing))}")
        tasks = [task for task in tasks if task.task_id in options.only]
    return tasks


def document(task: Task, layout: str) -> tuple[str, int]:
    """The editor's buffer for `task` and the cursor offset in it."""
    gap = "\n" if layout == "open-line" else ""
    return task.prompt + gap + task.suffix, len(task.prompt)


def splice(task: Task, completion: str, layout: str = "open-line") -> str:
    """The program with the completion in the hole.

    `open-line`: the hole is an empty line (whole lines), so the completion ends its last line
    (an editor user accepts it and the line is there); trailing blanks go. `as-given`: the
    completion is inserted at the cursor as it stands, before the code of the suffix's first
    line, as accepting it in an editor does."""
    if layout == "as-given":
        return task.prompt + completion + task.suffix
    return task.prompt + completion.rstrip() + "\n" + task.suffix


def splice_layout(config: str, options: Options) -> str:
    """How `config`'s answers are spliced: the raw model's as whole lines (the bare model's
    answer, which knows no cursor), the pipeline's as its document is laid out."""
    return "open-line" if config == RAW else options.document


def joins_line(task: Task, completion: str, layout: str) -> bool:
    """Whether accepting `completion` in `layout` joins its last line with the code of the
    suffix's first line (as-given, when that line holds code)."""
    return (layout == "as-given" and bool(task.suffix.split("\n", 1)[0].strip())
            and bool(completion.strip()) and not completion.rstrip(" \t").endswith("\n"))


def line_count(text: str) -> int:
    return len(normalised_lines(text))


def normalised_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def exact_match(completion: str, canonical: str) -> bool:
    """Equal up to whitespace: the stripped non-blank lines agree."""
    return normalised_lines(completion) == normalised_lines(canonical)


def compiles(program: str) -> bool:
    """Whether `program` is valid Python. Post-processing aims at this even when the code is
    wrong, so it is scored on its own: it moves where pass@1 cannot (a small model rarely
    fills a multi-line hole correctly). Compiling runs nothing."""
    try:
        compile(program, "<candidate>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


# --- generation --------------------------------------------------------------------------


@dataclass
class RawCut:
    """The raw baseline's only rule: a single-line answer ends at the first newline, a
    multi-line answer at the first blank line (stopping there gives the same text as cutting
    after `max_tokens`, without paying for tokens that would be thrown away)."""

    multiline: bool

    def check(self, text: str) -> int | None:
        if not self.multiline:
            newline = text.find("\n")
            return newline if newline >= 0 else None
        start = 0
        while (end := text.find("\n", start)) >= 0:
            if not text[start:end].strip():
                return max(0, start - 1)
            start = end + 1
        return None

    def cut_at_deadline(self, text: str) -> str:
        cut = self.check(text)
        return text if cut is None else text[:cut]


def deadline_after(start: float, budget_ms: int | None) -> float:
    return start + (budget_ms / 1000.0 if budget_ms else math.inf)


def run_raw(engine: Any, task: Task, options: Options) -> Attempt:
    tokenizer = engine.tokenizer
    start = time.monotonic()
    bos = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
    room = engine.context_length - options.tokens - len(bos) - 1
    tokens = bos + tokenizer.encode(task.prompt)[-room:]
    request = GenerationRequest(
        PromptParts(tokens),
        max_tokens=options.tokens,
        stop_ids=frozenset(tokenizer.eos_ids),
        stopper=RawCut(task.multiline),
        deadline=deadline_after(start, options.budget_ms),
        created=start,
    )
    generation = engine.backend.generate(request)
    text = RawCut(task.multiline).cut_at_deadline(generation.text)
    latency = (time.monotonic() - start) * 1000
    return Attempt(text, generation.text, generation.stop_reason, latency,
                   generation.timings.to_dict(), cache=tokens + list(generation.tokens))


def run_pipeline(engine: Any, task: Task, options: Options, ablations: list[str],
                 disabled: frozenset[str] = frozenset(),
                 mid_line: bool = False, invoked: bool = False) -> dict[str, Attempt]:
    """The pipeline's attempt (with `disabled` filters off), plus `ablations` derived from its
    generation by re-running the filters (see the module docstring). `mid_line`: without the
    handling of insertions before code (`MID_LINE`); `invoked`: as an invoked request
    (`INVOKED`)."""
    text, offset = document(task, options.document)
    multiline = task.multiline if options.multiline == "hole" else None
    before = is_before_code(text[:offset], text[offset:])
    if mid_line and before and multiline is None:
        multiline = False  # the old scope rule: text after the cursor, one line
    start = time.monotonic()
    prepared = engine.prepare(CompletionInput.of_text(text, offset, language_id="python",
                                                      path="humaneval.py"),
                              multiline=multiline)
    if mid_line and before:
        prepared = replace(prepared,
                           stopper=replace(prepared.stopper, before_code=False,
                                           next_line=_line_after(text, offset)),
                           filters=replace(prepared.filters, before_code=False))
    if invoked:
        result = engine.run_choices(prepared, 1, deadline=deadline_after(start, options.budget_ms),
                                    created=start, disabled_filters=disabled)[0]
    else:
        result = engine.run(prepared, deadline=deadline_after(start, options.budget_ms),
                            created=start, disabled_filters=disabled)
    latency = (time.monotonic() - start) * 1000
    # The generated ids are not in the result; re-encoding the model text comes close enough
    # for restoring the cache (see generate_all).
    cache = prepared.prompt.tokens + engine.tokenizer.encode(result.raw)
    check, rank = result.extra.get("suffix_check"), result.extra.get("block_rank")
    out = {"": Attempt(result.text, result.raw, result.stop_reason, latency, result.timings,
                       cache=cache, suffix_check=check if isinstance(check, dict) else None,
                       block_rank=rank if isinstance(rank, dict) else None)}
    if not ablations:
        return out
    own_ms = _timed_postprocess(result.raw, prepared.filters, disabled)[1]
    for name in ablations:
        cut, ms = _timed_postprocess(result.raw, prepared.filters, frozenset({name}))
        out[name] = Attempt(cut, result.raw, result.stop_reason, latency - own_ms + ms,
                            result.timings)
    return out


def _line_after(text: str, offset: int) -> str:
    """The first non-blank line after the cursor's line (the stop rule's `next_line` for a
    cursor inside a line)."""
    line_end = text.find("\n", offset)
    if line_end < 0:
        return ""
    return next((row for row in text[line_end + 1 :].split("\n") if row.strip()), "")


def _timed_postprocess(raw: str, filters: Any, disabled: frozenset[str]) -> tuple[str, float]:
    start = time.perf_counter()
    text = postprocess(raw, filters, disabled)
    return text, (time.perf_counter() - start) * 1000


def warm_up(engine: Any) -> None:
    """One short generation before timing anything: the first request of a process pays for
    paging the weights in, which is a start-up cost and not a per-completion one."""
    tokenizer = engine.tokenizer
    bos = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
    tokens = bos + tokenizer.encode("def add(a, b):\n    return")
    engine.backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=4,
                                              stop_ids=frozenset(tokenizer.eos_ids)))


def generate_all(engine: Any, tasks: list[Task], options: Options,
                 log: Log) -> dict[str, list[Attempt]]:
    """Each configuration's attempts. Tasks go in chunks of `CHUNK`; within a chunk each
    generating configuration takes its turn over all its tasks, so a change in machine load
    during the run hits all configurations alike instead of one whole pass. Before a turn the
    KV cache is put back (`backend.warm`, not timed) to what the configuration's own previous
    request left there: every configuration then sees the cache as if it ran alone over the
    tasks in order (consecutive tasks often share a program, so that reuse is real and
    equal for all), and none gets another configuration's prefill of the same task free."""
    results: dict[str, list[Attempt]] = {c: [] for c in options.configs}
    try:
        _generate_chunks(engine, tasks, options, log, results)
    except KeyboardInterrupt:
        # A long run stopped by hand still reports the tasks every configuration finished.
        done = min(len(attempts) for attempts in results.values())
        log(f"[generate] interrupted: scoring the first {done} tasks")
        for attempts in results.values():
            del attempts[done:]
    return results


def _generate_chunks(engine: Any, tasks: list[Task], options: Options, log: Log,
                     results: dict[str, list[Attempt]]) -> None:
    ablations = [c for c in options.configs if c.startswith(ABLATION)]
    derived = [c.removeprefix(ABLATION) for c in ablations] \
        if options.ablation_mode == "reuse" else []
    passes: list[tuple[str, frozenset[str]]] = []
    if RAW in options.configs:
        passes.append((RAW, frozenset()))
    if PIPELINE in options.configs or derived:
        passes.append((PIPELINE, frozenset()))
    if ONE_TRY in options.configs:
        passes.append((ONE_TRY, frozenset()))
    if INVOKED in options.configs:
        passes.append((INVOKED, frozenset()))
    if MID_LINE in options.configs:
        passes.append((MID_LINE, frozenset()))
    engines = {name: engine.with_config(engine.config.updated(update))
               for name, update in VARIANTS.items() if name in options.configs}
    passes += [(name, frozenset()) for name in engines]
    if ONE_TRY in options.configs:
        engines[ONE_TRY] = engine.with_config(
            engine.config.updated({"completion": {"alternatives": 0}}))
    if options.ablation_mode == "rerun":
        passes += [(c, frozenset({c.removeprefix(ABLATION)})) for c in ablations]
    started = time.monotonic()
    left_in_cache: dict[str, list[int]] = {}
    for first in range(0, len(tasks), CHUNK):
        for config, disabled in passes:
            if left_in_cache.get(config):
                engine.warm(left_in_cache[config])
            for i in range(first, min(first + CHUNK, len(tasks))):
                task = tasks[i]
                if config == RAW:
                    attempts = {"": run_raw(engine, task, options)}
                else:
                    attempts = run_pipeline(engines.get(config, engine), task,
                                            options, derived if config == PIPELINE else [],
                                            disabled, mid_line=config == MID_LINE,
                                            invoked=config == INVOKED)
                for key, attempt in attempts.items():
                    name = config if not key else ABLATION + key
                    if name in results:
                        results[name].append(attempt)
                main = attempts[""]
                left_in_cache[config] = main.cache
                log(f"[{config}] {i + 1}/{len(tasks)} {task.task_id} {main.latency_ms:.0f} ms "
                    f"{main.stop_reason}: {main.text!r:.70}")
    log(f"[generate] {len(tasks)} tasks x {len(passes)} generating configurations in "
        f"{time.monotonic() - started:.0f} s")


# --- functional check --------------------------------------------------------------------

# Runs in the child: limits first, then the candidate as __main__. Hard limits can only go
# down, so a limit already lower than ours is kept.
_BOOTSTRAP = """
import resource, runpy, sys
def cap(kind, soft, hard):
    old_soft, old_hard = resource.getrlimit(kind)
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(kind, (soft, hard))
cpu, memory = int(sys.argv[2]), int(sys.argv[3])
cap(resource.RLIMIT_CPU, cpu, cpu + 1)
cap(resource.RLIMIT_AS, memory, memory)
cap(resource.RLIMIT_FSIZE, 1 << 24, 1 << 24)
cap(resource.RLIMIT_CORE, 0, 0)
sys.argv = sys.argv[1:2]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass(frozen=True)
class CheckResult:
    status: str  # passed | failed | timeout
    detail: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def program_with_tests(task: Task, completion: str, layout: str = "open-line") -> str:
    """The spliced program, the task's tests and a mark printed only if `check` returned (a
    completion that calls `exit(0)` must not pass)."""
    return (f"{splice(task, completion, layout)}\n\n{task.test}\n\n"
            f"check({task.entry_point})\nprint({PASS_MARK!r})\n")


def check_program(program: str, timeout_s: float = 10.0, memory_mb: int = 1024) -> CheckResult:
    """Run `program` in a fresh interpreter (isolated mode, empty temporary directory, CPU time
    and address-space limits, wall-clock timeout that kills its whole process group)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ghostfill-check-") as tmp:
        path = Path(tmp) / "candidate.py"
        path.write_text(program, encoding="utf-8")
        cpu = max(1, math.ceil(timeout_s))
        command = [sys.executable, "-I", "-c", _BOOTSTRAP, str(path), str(cpu),
                   str(memory_mb * 1024 * 1024)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            process = subprocess.Popen(command, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, start_new_session=True)
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return CheckResult("timeout", f"over {timeout_s:g} s",
                                   time.monotonic() - start)
            out.seek(0)
            stdout = out.read()
            err.seek(max(0, err.seek(0, os.SEEK_END) - 2000))
            stderr = err.read().decode("utf-8", errors="replace")
    seconds = time.monotonic() - start
    if code == 0 and PASS_MARK.encode() in stdout:
        return CheckResult("passed", "", seconds)
    if code in (-signal.SIGKILL, -signal.SIGXCPU):  # the CPU-time limit
        return CheckResult("timeout", f"CPU limit (signal {-code})", seconds)
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    return CheckResult("failed", last[:200] or f"exit code {code}", seconds)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def check_all(programs: Iterable[str], jobs: int, timeout_s: float,
              memory_mb: int) -> dict[str, CheckResult]:
    """Check each distinct program once (configurations often agree), `jobs` at a time."""
    unique = list(dict.fromkeys(programs))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = pool.map(lambda p: check_program(p, timeout_s, memory_mb), unique)
        return dict(zip(unique, results, strict=True))


def score(tasks: list[Task], results: dict[str, list[Attempt]], options: Options,
          log: Log) -> None:
    layouts = {config: splice_layout(config, options) for config in results}
    programs = {(config, i): program_with_tests(task, attempts[i].text, layouts[config])
                for config, attempts in results.items() for i, task in enumerate(tasks)}
    started = time.monotonic()
    checked = check_all(programs.values(), options.jobs, options.timeout_s, options.memory_mb)
    log(f"[check] {len(checked)} distinct programs in {time.monotonic() - started:.0f} s "
        f"({options.jobs} jobs)")
    for (config, i), program in programs.items():
        attempt, check = results[config][i], checked[program]
        attempt.exact = exact_match(attempt.text, tasks[i].canonical)
        attempt.syntax_ok = compiles(splice(tasks[i], attempt.text, layouts[config]))
        attempt.joins = joins_line(tasks[i], attempt.text, layouts[config])
        attempt.passed, attempt.status, attempt.detail = check.passed, check.status, check.detail


# --- summary and output ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(results: dict[str, list[Attempt]]) -> dict[str, dict[str, Any]]:
    summary = {}
    for config, attempts in results.items():
        n = len(attempts)
        latencies = [a.latency_ms for a in attempts]
        summary[config] = {
            "n": n,
            "exact": round(sum(a.exact for a in attempts) / n, 4) if n else 0.0,
            "pass@1": round(sum(a.passed for a in attempts) / n, 4) if n else 0.0,
            "syntax_ok": round(sum(a.syntax_ok for a in attempts) / n, 4) if n else 0.0,
            "exact_count": sum(a.exact for a in attempts),
            "passed_count": sum(a.passed for a in attempts),
            "empty": sum(not a.text.strip() for a in attempts),
            "joins": sum(a.joins for a in attempts),
            "lines_mean": round(sum(line_count(a.text) for a in attempts) / n, 2) if n else 0.0,
            "timeouts": sum(a.status == "timeout" for a in attempts),
            "latency_p50_ms": round(percentile(latencies, 50), 1),
            "latency_p95_ms": round(percentile(latencies, 95), 1),
            # Load-independent cost: on a shared machine the milliseconds vary with the load,
            # the generated tokens do not.
            "generated_tokens_mean": round(sum(
                a.timings.get("generated_tokens", 0) for a in attempts) / n, 1) if n else 0.0,
        }
    return summary


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    header = f"{'configuration':<28} {'n':>5} {'exact':>7} {'pass@1':>7} {'passed':>6} " \
             f"{'syntax':>7} {'empty':>6} {'joins':>6} {'lines':>6} " \
             f"{'p50 ms':>8} {'p95 ms':>8} {'tokens':>7}"
    rows = [header, "-" * len(header)]
    for config, s in summary.items():
        rows.append(f"{config:<28} {s['n']:>5} {s['exact']:>7.1%} {s['pass@1']:>7.1%} "
                    f"{s['passed_count']:>6} {s['syntax_ok']:>7.1%} {s['empty']:>6} "
                    f"{s.get('joins', 0):>6} {s.get('lines_mean', 0.0):>6.2f} "
                    f"{s['latency_p50_ms']:>8.0f} {s['latency_p95_ms']:>8.0f} "
                    f"{s['generated_tokens_mean']:>7.1f}")
    return "\n".join(rows)


def result_path(out: Path, holes: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"humaneval-{holes}-{stamp}.json"
    n = 2
    while path.exists():
        path = out / f"humaneval-{holes}-{stamp}-{n}.json"
        n += 1
    return path


def _meta(engine: Any, options: Options, tasks: list[Task], argv: list[str] | None) -> dict:
    return {
        "command": argv if argv is not None else sys.argv,
        "data": str(options.data),
        "holes": options.holes,
        "limit": options.limit,
        "seed": options.seed,
        "tasks": len(tasks),
        "canonical_lines_mean": round(sum(line_count(t.canonical) for t in tasks)
                                      / max(1, len(tasks)), 2),
        "configs": options.configs,
        "model": engine.model_name,
        "backend": engine.describe().backend,
        "template": engine.template.name,
        "context_length": engine.context_length,
        "max_tokens": options.tokens,
        "budget_ms": options.budget_ms,
        "document": options.document,
        "multiline": options.multiline,
        "engine": options.engine,
        "ablation_mode": options.ablation_mode,
        "check": {"timeout_s": options.timeout_s, "memory_mb": options.memory_mb,
                  "jobs": options.jobs},
        "revision": _revision(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_start": list(os.getloadavg())},
    }


def _revision() -> str | None:
    """`git describe` of the checkout being measured (`-dirty` when edited), if there is one."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_humaneval(options: Options, *, engine: Any = None, log: Log | None = None,
                  argv: list[str] | None = None) -> Report:
    """Generate, check, summarise, write JSON (and plots). `engine`: reuse a loaded one."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.time()
    tasks = select_tasks(options)
    if not tasks:
        raise GhostfillError(f"no {options.holes}-line tasks in {options.data}")
    if engine is None:
        from ghostfill.engine import CompletionEngine

        engine = CompletionEngine.load(engine_config(options))
    meta = _meta(engine, options, tasks, argv)
    log(f"{len(tasks)} {options.holes}-line tasks, model {meta['model']} ({meta['backend']}), "
        f"configurations: {', '.join(options.configs)}")
    warm_up(engine)
    results = generate_all(engine, tasks, options, log)
    finished = len(next(iter(results.values())))
    if finished == 0:
        raise KeyboardInterrupt
    meta["interrupted"] = finished < len(tasks)
    tasks = tasks[:finished]
    meta["tasks"] = finished
    score(tasks, results, options, log)
    meta["wall_s"] = round(time.time() - started, 1)
    meta["machine"]["load_end"] = list(os.getloadavg())
    data = {
        "schema": SCHEMA,
        "meta": meta,
        "summary": summarise(results),
        "tasks": [
            {**task.to_dict(), "results": {c: results[c][i].to_dict() for c in results}}
            for i, task in enumerate(tasks)
        ],
    }
    options.out.mkdir(parents=True, exist_ok=True)
    path = result_path(options.out, options.holes)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    plots: list[Path] = []
    if options.plots:
        from ghostfill.bench.plots import plot_report

        plots = plot_report(data, path.with_suffix(""))
    return Report(path, data, plots)


def engine_config(options: Options) -> Config:
    model: dict[str, Any] = {}
    if options.model:
        model["name"] = options.model
    if options.backend:
        model["backend"] = options.backend
    return Config().updated({"model": model, "completion": {"max_tokens": options.tokens},
                             "server": {"engine": options.engine}})

"""Post-processing filters: golden cases plus property tests.

Golden cases live in `tests/golden/filters/*.txt`, several per file, in this format:

    === model repeats the closing parenthesis ===
    language: python
    multiline: false
    filter: suffix_overlap
    block_indent: 4
    --- document ---
    print(foo(█))
    --- raw ---
    x))
    --- expected ---
    x

* `=== title ===` starts a case. Header lines `key: value` follow:
  - `language`: grammar name (`python`, `tsx`, `csharp`…) or `plain` for no grammar;
  - `multiline`: `true` / `false`, the single- vs multi-line decision given to the filters;
  - `filter` (optional): run only this filter (by its name in `FILTERS`); default: the whole
    pipeline;
  - `block_indent` (optional): default is `cursor_scope(...).block_indent` at the cursor.
* `--- document ---`: the buffer, with `█` marking the cursor. `--- raw ---`: the model's text.
  `--- expected ---`: what the filters must return.
* A section's text is taken verbatim up to the next `---`/`===` line, without the line break
  before that line; an empty line before it therefore means the text ends with a line break.
  An empty section is the empty string. `⇥` stands for a tab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghostfill.completion.filters.indentation import normalize_indentation
from ghostfill.completion.filters.layout import is_before_code
from ghostfill.completion.postprocess import (
    FILTER_NAMES,
    FILTERS,
    FilterContext,
    postprocess,
    run_filters,
)
from ghostfill.completion.scopes import cursor_scope
from ghostfill.completion.syntax import SyntaxDocument

GOLDEN = Path(__file__).parent / "golden" / "filters"
CURSOR = "█"
_TITLE = re.compile(r"^=== (.+) ===$")
_SECTION = re.compile(r"^--- (document|raw|expected) ---$")


@dataclass(frozen=True)
class Case:
    title: str
    source: str
    language: str | None
    multiline: bool
    filter: str | None
    block_indent: int | None
    document: str
    raw: str
    expected: str

    def context(self) -> FilterContext:
        offset = self.document.index(CURSOR)
        text = self.document.replace(CURSOR, "")
        indent = self.block_indent
        if indent is None:
            indent = cursor_scope(SyntaxDocument(text, self.language), offset).block_indent
        prefix, suffix = text[:offset], text[offset:]
        # As `CompletionEngine.prepare` decides it: the cursor in the leading whitespace of a
        # line that holds code.
        return FilterContext(prefix, suffix, self.language, self.multiline, indent,
                             before_code=is_before_code(prefix, suffix))


def parse_golden(path: Path) -> list[Case]:
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final line break ends its last line
    cases: list[Case] = []
    title: str | None = None
    headers: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None

    def finish() -> None:
        if title is None:
            return
        missing = {"document", "raw", "expected"} - sections.keys()
        assert not missing, f"{path.name}: case {title!r} lacks {missing}"
        text = {k: "\n".join(v).replace("⇥", "\t") for k, v in sections.items()}
        assert text["document"].count(CURSOR) == 1, f"{title!r}: need exactly one {CURSOR}"
        language = headers.get("language", "plain")
        cases.append(
            Case(
                title=title,
                source=path.name,
                language=None if language == "plain" else language,
                multiline={"true": True, "false": False}[headers["multiline"]],
                filter=headers.get("filter"),
                block_indent=int(headers["block_indent"]) if "block_indent" in headers else None,
                document=text["document"],
                raw=text["raw"],
                expected=text["expected"],
            )
        )

    for line in lines:
        if match := _TITLE.match(line):
            finish()
            title, headers, sections, current = match.group(1), {}, {}, None
        elif match := _SECTION.match(line):
            current = sections.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
    finish()
    return cases


CASES = [case for path in sorted(GOLDEN.glob("*.txt")) for case in parse_golden(path)]


def test_golden_corpus_is_broad() -> None:
    assert len(CASES) >= 40
    assert len({case.language for case in CASES}) >= 5
    titles = [(case.source, case.title) for case in CASES]
    assert len(titles) == len(set(titles)), "case titles must be unique per file"
    assert {case.filter for case in CASES if case.filter} <= FILTER_NAMES


def _ids(cases: list[Case]) -> list[str]:
    return [f"{case.source}:{case.title}" for case in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_golden(case: Case) -> None:
    ctx = case.context()
    disabled = FILTER_NAMES - {case.filter} if case.filter else frozenset()
    assert run_filters(case.raw, ctx, disabled) == case.expected


PIPELINE_CASES = [case for case in CASES if not case.filter]


@pytest.mark.parametrize("case", PIPELINE_CASES, ids=_ids(PIPELINE_CASES))
def test_expected_output_is_a_fixed_point(case: Case) -> None:
    """Filtering a finished suggestion again changes nothing: the filters agree on where a
    completion ends."""
    assert run_filters(case.expected, case.context()) == case.expected


def test_filter_order_is_fixed_and_named() -> None:
    assert [name for name, _ in FILTERS] == [
        "indentation",
        "block_end",
        "repetition",
        "brackets",
        "suffix_overlap",
        "syntax_validity",
        "dangling_block",
        "empty",
    ]


def test_disabling_a_filter_by_name() -> None:
    ctx = FilterContext("print(foo(", "))\n", "python", False, 0)
    assert postprocess("x))", ctx) == "x"
    everything = FILTER_NAMES
    assert postprocess("x))", ctx, everything) == "x))"


def test_unknown_filter_names_are_ignored() -> None:
    ctx = FilterContext("x = ", "\n", "python", False, 0)
    assert postprocess("1", ctx, frozenset({"no_such_filter"})) == "1"


# ------------------------------------------------------------------------- property tests

_CODE_ALPHABET = st.sampled_from(
    [
        *"abcxyz019 _.,:;=+-*/\"'`#\\",
        *"()[]{}",
        "\n",
        "\t",
        "    ",
        "def ",
        "if ",
        "return ",
        "é",
        "→",
    ]
)
_code = st.lists(_CODE_ALPHABET, max_size=60).map("".join)
_grammars = st.sampled_from([None, "python", "javascript", "rust", "go", "c"])


@st.composite
def _contexts(draw: st.DrawFn) -> FilterContext:
    return FilterContext(
        prefix=draw(_code),
        suffix=draw(_code),
        grammar=draw(_grammars),
        multiline=draw(st.booleans()),
        block_indent=draw(st.integers(min_value=0, max_value=12)),
    )


_PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY_SETTINGS
@given(raw=_code, ctx=_contexts())
def test_output_is_a_cut_of_the_normalised_input(raw: str, ctx: FilterContext) -> None:
    """Every filter after `indentation` only cuts, so the result is a prefix of the
    normalised model text — or empty. Strict mode: a filter that raises fails the test."""
    out = run_filters(raw, ctx, strict=True)
    assert normalize_indentation(raw, ctx).startswith(out)


@_PROPERTY_SETTINGS
@given(raw=_code, ctx=_contexts(), name=st.sampled_from(sorted(FILTER_NAMES - {"indentation"})))
def test_each_cutting_filter_returns_a_prefix(raw: str, ctx: FilterContext, name: str) -> None:
    apply = dict(FILTERS)[name]
    assert raw.startswith(apply(raw, ctx))


@_PROPERTY_SETTINGS
@given(raw=st.text(max_size=80), ctx=_contexts())
def test_postprocess_never_raises_on_arbitrary_text(raw: str, ctx: FilterContext) -> None:
    assert isinstance(run_filters(raw, ctx, strict=True), str)


@_PROPERTY_SETTINGS
@given(
    case=st.sampled_from(CASES),
    start=st.integers(min_value=0, max_value=300),
    length=st.integers(min_value=0, max_value=300),
    noise=_code,
)
def test_cuts_of_realistic_answers_in_realistic_documents(
    case: Case, start: int, length: int, noise: str
) -> None:
    """Pieces of real model answers (cut anywhere, with noise appended) in the golden
    documents: still a prefix of the normalised text, and every filter still only cuts."""
    ctx = case.context()
    raw = case.raw[start : start + length] + noise
    assert normalize_indentation(raw, ctx).startswith(run_filters(raw, ctx, strict=True))
    for name, apply in FILTERS[1:]:
        assert raw.startswith(apply(raw, ctx)), name

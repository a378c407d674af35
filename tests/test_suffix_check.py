"""The suffix check (issue #18): a prefix-only model's answer at the start of a line is checked
against the code below, by generating lines that bind a name those lines need and keeping the
candidate that makes them most probable (`completion/suffix_check.py`,
`CompletionEngine.suffix_checked`, `Backend.score`).

Pure helpers with golden cases; the scores and the choice with the real default model (the
llama.cpp backend in process, and across the engine process).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ghostfill.backends.factory import create_backend
from ghostfill.completion import suffix_check
from ghostfill.completion.filters.splice import adds_errors
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine, Prepared
from ghostfill.lsp.protocol import plain
from tests.sync_client import SyncClient
from tests.test_engine_process import runtime  # noqa: F401 (the fixture)

# ------------------------------------------------------------------------ needed names

NEEDED_CASES = [
    # (grammar, before, after, needed)
    # `n` is used below and bound nowhere above; `sum_value` is bound above.
    ("python", "def f(numbers):\n    sum_value = 0\n",
     "\n        sum_value += n\n    return sum_value\n", ["n"]),
    # Builtins and keywords are not needed; nor an attribute (`.append`) or a keyword
    # argument's name (`key=`); `sorted` is a builtin, `lst` is above.
    ("python", "def f(lst):\n",
     "    out.append(sorted(lst, key=len))\n    return None\n", ["out"]),
    # A name mentioned above only as an attribute is still needed (`.total` is not `total`).
    ("python", "def f(x):\n    y = x.total\n", "    return total + y\n", ["total"]),
    # Only the rest of the cursor's line and the next two lines count (`d` is too far).
    ("python", "def f():\n", "    print(a)\n    b.close()\n    c += 1\n    return d\n",
     ["a", "b", "c"]),
    # Order of first use, each once.
    ("python", "def f():\n", "    if e > 0 and o:\n        e += o\n", ["e", "o"]),
    # Names the next lines bind before they use them are not missing (HumanEval/36: `s` and
    # `ans` are assigned below the hole); a name used before it is bound still is.
    ("python", "def f(ns):\n",
     "    s = ''.join(ns)\n    ans = 0\n    for c in s:\n", []),
    ("python", "def f(a, b):\n", "    for e, o in zip(a, b):\n        t += e\n", ["t"]),
    ("python", "def f():\n", "    t += 1\n    t = 0\n", ["t"]),
    ("javascript", "function f(y) {\n", "  let [a, b] = y;\n  return a + b + c;\n}\n",
     ["c"]),
    ("go", "func f(xs []int) int {\n", "\tfor _, v := range xs {\n\t\tt += v\n", ["t"]),
    ("rust", "fn f(xs: &[i32]) {\n", "    let x = 1;\n    for v in xs { t += v + x; }\n",
     ["t"]),
    # Nothing after the cursor, or no grammar: nothing needed.
    ("python", "def f():\n", "\n\n", []),
    (None, "x = 1\n", "print(y)\n", []),
    # Other grammars: properties are their own node type.
    ("javascript", "function f(items) {\n", "  total += items.length;\n}\n", ["total"]),
    # A lambda's parameters and a comprehension's loop names are bound where they are used
    # (HumanEval/136: `lambda x: x < 0` below the hole does not need an `x`).
    ("python", "def f(lst):\n",
     "    out.extend(filter(lambda x: x < 0, lst))\n    big = [y for y in lst if y > k]\n",
     ["out", "k"]),
    ("javascript", "function f(xs) {\n", "  return xs.map(x => x + d).filter((y) => y);\n}\n",
     ["d"]),
    ("rust", "fn f(xs: &[i32]) {\n", "    let ys = xs.iter().map(|x| x + d);\n", ["d"]),
]


@pytest.mark.parametrize(("grammar", "before", "after", "needed"), NEEDED_CASES)
def test_needed_names(grammar: str | None, before: str, after: str, needed: list[str]) -> None:
    assert suffix_check.needed_names(before, after, grammar) == needed


def test_leads_indent_and_line_start() -> None:
    assert suffix_check.leads("n", "python") == ["n", "for n"]
    assert suffix_check.leads("n", "ruby") == ["n"]
    assert suffix_check.leads("n", None) == ["n"]
    # The greedy answer's indentation first; without one, the next code line's, less what
    # the cursor's line already has.
    assert suffix_check.lead_indent("    for x in y:", "def f():\n", "\n    x") == "    "
    assert suffix_check.lead_indent("", "def f():\n", "\n\n        x += 1") == "        "
    assert suffix_check.lead_indent("", "def f():\n    ", "\n        x += 1") == "    "
    assert suffix_check.lead_indent("", "def f():\n", "    return x\n") == "    "
    assert suffix_check.at_line_start("def f():\n    ")
    assert suffix_check.at_line_start("")
    assert not suffix_check.at_line_start("def f():\n    x = ")
    assert suffix_check.mentions("    for n in numbers:", ["n"])
    assert not suffix_check.mentions("    for num in numbers:", ["n"])
    assert suffix_check.next_lines("rest\na\nb\nc\n") == "rest\na\nb"


LEAD_CASES = [
    # (grammar, needed, greedy answer, before, after, leads)
    # One name missing: its binding leads.
    ("python", ["n"], "    for num in numbers:", "def f(numbers):\n", "\n        t += n\n",
     ["n", "for n"]),
    # The answer binds one of two names: the other's leads, then both at once
    # (HumanEval/37: `for e in evens:` where `for e, o in zip(evens, odds):` was meant).
    ("python", ["e", "o"], "    for e in evens:", "def f(evens, odds):\n",
     "\n        a.extend([e, o])\n", ["o", "for o", "e, o", "for e, o"]),
    ("python", ["i", "j"], "    q = q.lower()", "def f(q):\n", "\n    while i < j:\n",
     ["i", "for i", "j", "for j", "i, j", "for i, j"]),
    # A standard module used as one (`re.split`) is bound by its import; a variable that
    # happens to share a module's name (`string` not used as a module) is not.
    ("python", ["re"], "    # Write your code here", "def f(S):\n",
     "\n    s = re.split(r'x', S)\n", ["import re", "re", "for re"]),
    ("python", ["string"], "    x = 0", "def f():\n", "\n    return string + x\n",
     ["string", "for string"]),
    # A body below that needs `k`, and a call further down to a function nothing defines:
    # the line may be that helper's definition (HumanEval/59: `def is_prime(k):`).
    ("python", ["k"], "    x = 0", "def f(n):\n",
     "\n        if k < 2:\n            return False\n        return True\n"
     "    return max(j for j in range(n) if is_prime(j))\n",
     ["def is_prime(k", "k", "for k"]),
    # ...not when the function is defined below, or already known above, or when the code
    # below is not a body.
    ("python", ["k"], "    x = 0", "def f(n):\n",
     "\n        if k < 2:\n            return 1\n    def is_prime(j):\n"
     "        return is_prime(j)\n",
     ["k", "for k"]),
    ("python", ["k"], "    x = 0", "def f(n):\n    # is_prime below\n",
     "\n        if k < 2:\n            return 1\n    return is_prime(n)\n", ["k", "for k"]),
    ("python", ["k"], "    x = 0", "def f(n):\n",
     "\n    if k < 2:\n        return 1\n    return is_prime(n)\n", ["k", "for k"]),
    # A brace language's keywords that read like calls (`switch (x)`) are not functions.
    ("javascript", ["k"], "  let x = 0;", "function f(n) {\n",
     "\n    if (k < 2) return false;\n  }\n  switch (n) { default: return isPrime(n); }\n",
     ["function isPrime(k", "const k =", "let k =", "for (const k of"]),
    # Nothing missing: nothing to generate.
    ("python", ["n"], "    for n in numbers:", "def f(numbers):\n", "\n        t += n\n", []),
    ("go", ["k", "v"], "\tx := 0", "func f() {\n", "\n\t\tt[k] = v\n",
     ["k :=", "for _, k := range", "v :=", "for _, v := range", "k, v :=",
      "for k, v := range"]),
]


@pytest.mark.parametrize(("grammar", "needed", "answer", "before", "after", "expected"),
                         LEAD_CASES)
def test_candidate_leads(grammar: str, needed: list[str], answer: str, before: str, after: str,
                         expected: list[str]) -> None:
    indent = suffix_check.lead_indent(answer, before, after)
    assert suffix_check.candidate_leads(needed, answer, before, after, grammar,
                                        indent) == expected


def test_first_line_joined_and_body_below() -> None:
    assert suffix_check.first_line("    for n in xs:\n        y += n") == "    for n in xs:"
    assert suffix_check.first_line("\n    x = 1\n    y = 2") == "\n    x = 1"
    # Open line: the suffix starts with the cursor line's end. Before code: a line of its own.
    assert suffix_check.joined("    x = 1", "\n    return x") == "    x = 1"
    assert suffix_check.joined("    x = 1", "    return x") == "    x = 1\n"
    assert suffix_check.joined("    x = 1\n", "    return x") == "    x = 1\n"
    # A header whose body is the code below (deeper), on an open line or before code.
    assert suffix_check.body_below("    for n in xs:", "\n        total += n\n")
    assert suffix_check.body_below("    if x:", "        return 1\n")
    assert suffix_check.body_below("  if (x) {", "\n    y();\n  }\n")
    assert not suffix_check.body_below("    if x:", "    return 1\n        y\n")
    assert not suffix_check.body_below("    total = 0", "\n        total += n\n")
    assert not suffix_check.body_below("    for n in xs:", "\n\n    return total\n")


# ------------------------------------------------------------------- scores, real model

PROMPT = "def add(a, b):\n    return"


def ids(backend, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    tok = backend.tokenizer
    return ([tok.bos_id] if tok.add_bos and tok.bos_id is not None else []) + tok.encode(text)


def test_scores_are_log_probabilities_and_leave_the_prompt_cached(gemma_backend) -> None:
    prompt = ids(gemma_backend, PROMPT)
    good = gemma_backend.tokenizer.encode(" a + b\n")
    bad = gemma_backend.tokenizer.encode(" zebra)(\n")
    first, rest = good[:2], good[2:]
    scores = gemma_backend.score(prompt, [good, bad, first], document=None)
    assert scores is not None and len(scores) == 3
    assert all(s < 0 for s in scores)
    assert scores[0] > scores[1] + 5  # the obvious body is far likelier than nonsense
    # The chain rule: log P(ab) = log P(a) + log P(b | a). llama.cpp's sums differ by up to
    # ~0.1 with how the ids were batched (seen: -6.24 against -6.36 after other tests had
    # used the model); a position off by one would be off by whole nats.
    (tail,) = gemma_backend.score(prompt + first, [rest], document=None) or [None]
    assert tail is not None and scores[0] == pytest.approx(scores[2] + tail, abs=0.3)
    assert gemma_backend._cached == prompt + first  # the last prompt scored stays cached


def test_scores_cross_the_engine_process_unchanged(gemma_backend, runtime: Path) -> None:  # noqa: F811
    shared = create_backend(Config().updated({"model": {"contextLength": 2048}}))
    try:
        prompt = ids(shared, PROMPT)
        conts = [shared.tokenizer.encode(" a + b\n"), shared.tokenizer.encode(" a - b\n")]
        there = shared.score(prompt, conts, document="/tmp/add.py")
        here = gemma_backend.score(prompt, conts, document="/tmp/add.py")
        assert there is not None and here is not None
        assert there == pytest.approx(here, abs=0.05)
        assert shared.options()["engine"] == "shared"
    finally:
        shared.close()


# ------------------------------------------------------------------ the choice, real model

#: HumanEval/8 with line 3 cut out (the open-line layout): the loop below uses `n`, which
#: nothing above binds. The default model's greedy line is `for num in numbers:`.
SUM_PRODUCT = (
    "from typing import List, Tuple\n\n\n"
    "def sum_product(numbers: List[int]) -> Tuple[int, int]:\n"
    '    """ For a given list of integers, return a tuple of the sum and the product.\n'
    '    >>> sum_product([1, 2, 3, 4])\n    (10, 24)\n    """\n'
    "    sum_value = 0\n    prod_value = 1\n\n"
)
SUM_PRODUCT_AFTER = ("\n        sum_value += n\n        prod_value *= n\n"
                     "    return sum_value, prod_value\n")


def prepared_at(engine: CompletionEngine, before: str, after: str, path: str,
                multiline: bool | None = None) -> Prepared:
    """The request at the end of `before`, with `after` below the cursor."""
    source = CompletionInput.of_text(before + after, len(before), language_id="python",
                                     path=path)
    return engine.prepare(source, multiline=multiline)


def answer(engine: CompletionEngine, check: bool):  # type: ignore[no-untyped-def]
    prepared = prepared_at(engine, SUM_PRODUCT, SUM_PRODUCT_AFTER, "sum_product.py",
                           multiline=False)
    now = time.monotonic()
    if check:
        return engine.run_choices(prepared, 1, deadline=now + 120, created=now)[0]
    return engine.run(prepared, deadline=now + 120, created=now)


def test_an_invoked_answer_binds_the_name_the_next_lines_use(gemma_backend) -> None:
    engine = CompletionEngine(Config(), gemma_backend)
    greedy = answer(engine, check=False)
    assert greedy.text.strip() and not suffix_check.mentions(greedy.text, ["n"])
    checked = answer(engine, check=True)
    assert checked.text.strip().startswith("for n in ")
    check = checked.extra["suffix_check"]
    assert isinstance(check, dict) and check["needed"] == ["n"] and check["chosen"] > 0
    # Off: the invoked answer is the greedy one. (Not compared by text: llama.cpp's numbers
    # differ slightly with how much of the prompt was cached, and so may a greedy line.)
    off = CompletionEngine(Config().updated({"completion": {"suffixCheck": "off"}}),
                           gemma_backend)
    unchecked = answer(off, check=True)
    assert "suffix_check" not in unchecked.extra
    assert not suffix_check.mentions(unchecked.text, ["n"])


#: HumanEval/59 with its first body line cut out: the helper's body below needs `k`, and the
#: code further down calls `is_prime`, which nothing defines.
PRIME = ('\n\ndef largest_prime_factor(n: int):\n'
         '    """Return the largest prime factor of n. Assume n > 1 and is not a prime.\n'
         '    >>> largest_prime_factor(13195)\n    29\n    >>> largest_prime_factor(2048)\n'
         '    2\n    """\n\n')
PRIME_AFTER = ("\n        if k < 2:\n            return False\n"
               "        for i in range(2, k - 1):\n            if k % i == 0:\n"
               "                return False\n        return True\n    largest = 1\n"
               "    for j in range(2, n + 1):\n        if n % j == 0 and is_prime(j):\n"
               "            largest = max(largest, j)\n    return largest\n")


def test_a_helper_definition_is_generated_above_its_body(gemma_backend) -> None:
    engine = CompletionEngine(Config(), gemma_backend)
    source = CompletionInput.of_text(PRIME + PRIME_AFTER, len(PRIME), language_id="python",
                                     path="prime.py")
    prepared = engine.prepare(source, multiline=False)
    now = time.monotonic()
    greedy = engine.run(prepared, deadline=now + 120, created=now)
    assert not suffix_check.mentions(greedy.text, ["k"])
    checked = engine.run_choices(prepared, 1, deadline=now + 240, created=now)[0]
    assert checked.text == "    def is_prime(k):"
    check = checked.extra["suffix_check"]
    assert isinstance(check, dict) and check["needed"] == ["k"] and check["chosen"] > 0


def test_an_answer_that_already_binds_a_needed_name_is_kept(gemma_backend) -> None:
    engine = CompletionEngine(Config(), gemma_backend)
    source_text = SUM_PRODUCT + "    for n in numbers:" + SUM_PRODUCT_AFTER
    # The cursor after the line: mid-line, no check; at the start of the line below: the
    # next lines need nothing.
    for offset in (len(SUM_PRODUCT) + len("    for n in numbers:"),
                   len(SUM_PRODUCT) + len("    for n in numbers:\n")):
        source = CompletionInput.of_text(source_text, offset, language_id="python",
                                         path="sum_product.py")
        prepared = engine.prepare(source)
        now = time.monotonic()
        result = engine.run_choices(prepared, 1, deadline=now + 120, created=now)[0]
        assert "suffix_check" not in result.extra


def invoked_server() -> SyncClient:
    """The real server over stdio, the model in process, with an invoked budget no loaded
    machine runs out of (the check and the ranking run within it)."""
    return SyncClient(settings={"server": {"debounceMs": 0, "engine": "inprocess",
                                           "prefetch": False, "warmOnOpen": False},
                                "completion": {"invokedBudgetMs": 600_000}})


def invoked_texts(server: SyncClient, path: Path, before: str, after: str) -> list[str]:
    """The suggestions of an invoked request at the end of `before` (column 0 of its last,
    empty line), with `after` below."""
    uri = path.as_uri()
    server.open(uri, before + after)
    result = server.inline(uri, before.count("\n"), 0, invoked=True)
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value
            for i in result.items]


def test_the_server_shows_the_checked_line_and_counts_it(tmp_path: Path) -> None:
    """The real server over stdio, the real model in process: an invoked request at the hole
    gets the line binding `n` first, and `ghostfill/stats` counts the check."""
    server = invoked_server()
    try:
        texts = invoked_texts(server, tmp_path / "sum_product.py", SUM_PRODUCT,
                              SUM_PRODUCT_AFTER)
        assert texts[0].startswith("    for n in ")
        stats = plain(server.request("ghostfill/stats", None))
        # An empty line in a body asks for a block: the blocks were weighed too, and the
        # checked header (its body is the code below) stayed in front.
        assert stats["suffix_check"] == {"ran": 1, "changed": 1, "blocks_ranked": 1,
                                         "blocks_reordered": 0}
    finally:
        server.stop()


# --------------------------------------------------------- block answers, real model

#: HumanEval/63 with its first two body lines cut out (the open-line layout): the code below
#: goes on with `if n == 1:` and `if n == 2:`. The default model's greedy block is a comment
#: and a stray assignment; among its next choices of first word is the base case the code
#: below continues.
FIBFIB = (
    "\n\ndef fibfib(n: int):\n"
    '    """The FibFib number sequence is a sequence similar to the Fibbonacci sequnece '
    "that's defined as follows:\n"
    "    fibfib(0) == 0\n    fibfib(1) == 0\n    fibfib(2) == 1\n"
    "    fibfib(n) == fibfib(n-1) + fibfib(n-2) + fibfib(n-3).\n"
    "    Please write a function to efficiently compute the n-th element of the fibfib "
    "number sequence.\n"
    "    >>> fibfib(1)\n    0\n    >>> fibfib(5)\n    4\n    >>> fibfib(8)\n    24\n"
    '    """\n\n'
)
FIBFIB_AFTER = ("\n    if n == 1:\n        return 0\n    if n == 2:\n        return 1\n"
                "    return fibfib(n - 1) + fibfib(n - 2) + fibfib(n - 3)\n")


def fibfib_blocks(engine: CompletionEngine, choices: int):  # type: ignore[no-untyped-def]
    prepared = prepared_at(engine, FIBFIB, FIBFIB_AFTER, "fibfib.py")
    assert prepared.stopper.multiline  # an empty line in a function body: a block
    now = time.monotonic()
    return prepared, engine.run_choices(prepared, choices, deadline=now + 600, created=now)


def test_invoked_blocks_come_in_the_order_the_code_below_follows_them(gemma_backend) -> None:
    engine = CompletionEngine(Config(), gemma_backend)
    now = time.monotonic()
    prepared, blocks = fibfib_blocks(engine, 3)
    greedy = engine.run(prepared, deadline=now + 600, created=now)
    assert greedy.text.lstrip().startswith("#")  # the model's own first block: a comment
    assert len(blocks) == 3 and len({b.text for b in blocks}) == 3
    assert blocks[0].text.startswith("    if n == 0:\n        return 0")
    rank = blocks[0].extra["block_rank"]
    assert rank["candidates"] == 5 and rank["chosen"] > 0  # weighed five, not the first
    # The order is the scores' order: each block read with the next lines after it.
    after = prepared.filters.suffix
    scores = gemma_backend.score(
        prepared.prompt.tokens,
        [engine.tokenizer.encode(suffix_check.scored_text(b.text, after)) for b in blocks],
        document="fibfib.py")
    assert scores is not None
    assert scores[0] >= scores[1] - 0.3 and scores[1] >= scores[2] - 0.3
    assert scores[0] > scores[2] + 5  # far apart: the order is not noise

    # blockCandidates 1: the model's order, nothing weighed; one choice still weighs five.
    plain_order = CompletionEngine(
        Config().updated({"completion": {"blockCandidates": 1}}), gemma_backend)
    first = fibfib_blocks(plain_order, 3)[1][0]
    assert "block_rank" not in first.extra and first.text.lstrip().startswith("#")
    one = fibfib_blocks(engine, 1)[1]
    assert len(one) == 1 and one[0].text == blocks[0].text


def test_a_single_line_request_is_not_weighed(gemma_backend) -> None:
    engine = CompletionEngine(Config(), gemma_backend)
    # The cursor inside a line: one line is asked for, and there is no block to weigh.
    prepared = prepared_at(engine, FIBFIB + "    if n", FIBFIB_AFTER, "fibfib.py")
    assert not prepared.stopper.multiline
    now = time.monotonic()
    result = engine.run_choices(prepared, 1, deadline=now + 120, created=now)[0]
    assert "block_rank" not in result.extra


def test_the_server_shows_the_ranked_block_first_and_counts_it(tmp_path: Path) -> None:
    """The real server over stdio, the real model in process: an invoked request at an empty
    line in a function body shows the block the code below continues first, the others after
    it, and `ghostfill/stats` counts the ranking."""
    server = invoked_server()
    try:
        texts = invoked_texts(server, tmp_path / "fibfib.py", FIBFIB, FIBFIB_AFTER)
        assert texts[0].startswith("    if n == 0:\n        return 0")
        assert len(texts) == 3 and len(set(texts)) == 3
        stats = plain(server.request("ghostfill/stats", None))
        assert stats["suffix_check"]["blocks_ranked"] == 1
        assert stats["suffix_check"]["blocks_reordered"] == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("completion", "prefix", "suffix", "grammar", "breaks"),
    [
        # CPython's parser judges Python: a `try:` whose `except` never comes breaks the
        # file (tree-sitter's grammar takes it), a loop with its body does not.
        ("    try:\n        total += 1", "def f(xs):\n    total = 0\n",
         "\n    return total\n", "python", True),
        ("    for x in xs:\n        total += x", "def f(xs):\n    total = 0\n",
         "\n    return total\n", "python", False),
        # Inserted before code as whole lines (the as-given layout).
        ("    if not xs:\n        return 0\n", "def f(xs):\n", "    return len(xs)\n",
         "python", False),
        ("    if not xs:\n", "def f(xs):\n", "    return len(xs)\n", "python", True),
        # A document broken already (mid-edit): tree-sitter's error count in the window.
        ("    y = (1,", "def f(:\n", "\n    return y\n", "python", True),
        ("    y = 1", "def f(:\n", "\n    return y\n", "python", False),
        ("  const y = [1,", "function f() {\n", "\n  return y;\n}\n", "javascript", True),
        ("  const y = [1];", "function f() {\n", "\n  return y;\n}\n", "javascript", False),
        # No grammar, or nothing inserted: nothing can be said.
        ("try:", "x = 1\n", "\ny = 2\n", None, False),
        ("   ", "def f():\n", "\n    return 1\n", "python", False),
    ],
)
def test_a_block_that_breaks_the_file_is_known(completion, prefix, suffix, grammar,
                                               breaks) -> None:
    """`filters.splice.adds_errors`, which puts a block that breaks the file after those that
    do not when an invoked request's blocks are weighed (`CompletionEngine.ranked_blocks`)."""
    before_code = not suffix.startswith("\n")
    assert adds_errors(completion, prefix, suffix, grammar, before_code) is breaks

"""Choosing a prefix-only model's answer by the code after the cursor (`completion.suffixCheck`).

A model without FIM tokens writes the line that best continues the code above it; it never
sees the code below. When that code uses a name nothing above defines (`for n in numbers:`
is missing before `sum_value += n`), the greedy line usually defines another one
(`for num in numbers:`). Showing the model the suffix in its prompt did not help the default
model (docs/benchmarks.md, "The suffix for models without FIM tokens"); what does is asking
it for a line that starts by binding the missing name and keeping whichever candidate makes
the following lines most probable, scored in the file's own order (prompt, answer, the next
lines): log P(answer + next lines | prompt). The prompt is unchanged, so the KV cache holds,
and the model is never shown the suffix as something to copy.

The same score orders the block answers of an invoked request (`completion.blockCandidates`):
the greedy block and the model's next choices of first word are each read with the next lines
after them, and the one that makes the whole most probable is shown first. On HumanEval's
multi-line holes the greedy block was the right one in 4 of 126 and one of five candidates in 7;
this order finds all 7 (docs/benchmarks.md).

These are the pure parts: which names, which leads, what is scored.
"""

from __future__ import annotations

import builtins
import keyword
import re
import sys
import textwrap

from tree_sitter import Node

from ghostfill.completion.parsing import parse_tree

#: Lines after the cursor's line that the needed names come from and that are scored.
HEAD_LINES = 2
#: Names tried per request (each costs one generation per lead).
MAX_NAMES = 2
#: Ids of answer + next lines scored at most (a long line after the cursor adds little).
MAX_SCORED_TOKENS = 128

#: How a line of each language starts when it binds a name (`{}`): the leads a candidate is
#: generated from. The name alone covers assignments everywhere.
BINDING_LEADS: dict[str, tuple[str, ...]] = {
    "python": ("{}", "for {}"),
    "javascript": ("const {} =", "let {} =", "for (const {} of"),
    "typescript": ("const {} =", "let {} =", "for (const {} of"),
    "tsx": ("const {} =", "let {} =", "for (const {} of"),
    "go": ("{} :=", "for _, {} := range"),
    "rust": ("let {} =", "for {}"),
}
#: Leads binding two names at once (`{0}`, `{1}`): a loop or an assignment that unpacks
#: (`for e, o in zip(…)`, `i, j = 0, len(q) - 1`) is how code binds two names in one line.
PAIR_LEADS: dict[str, tuple[str, ...]] = {
    "python": ("{0}, {1}", "for {0}, {1}"),
    "javascript": ("const [{0}, {1}] =", "for (const [{0}, {1}] of"),
    "typescript": ("const [{0}, {1}] =", "for (const [{0}, {1}] of"),
    "tsx": ("const [{0}, {1}] =", "for (const [{0}, {1}] of"),
    "go": ("{0}, {1} :=", "for {0}, {1} := range"),
    "rust": ("let ({0}, {1}) =", "for ({0}, {1})"),
}
#: A standard-library module the next lines use (`re.split(…)`) is bound by its import.
MODULE_LEADS: dict[str, tuple[str, frozenset[str]]] = {
    "python": ("import {}", frozenset(sys.stdlib_module_names)),
}
#: A block header whose body is the code below and whose needed names are parameters
#: (`{params}`) of a function the code further down calls (`{function}`) but nothing defines:
#: the line is that function's definition (a helper written above its first call).
DEFINITION_LEADS: dict[str, str] = {
    "python": "def {function}({params}",
    "javascript": "function {function}({params}",
    "typescript": "function {function}({params}",
    "tsx": "function {function}({params}",
    "go": "func {function}({params}",
    "rust": "fn {function}({params}",
}
_NOT_NEEDED = {"python": frozenset(dir(builtins)) | frozenset(keyword.kwlist)}


def at_line_start(prefix: str) -> bool:
    """The cursor is where a new line of code starts: nothing but indentation before it."""
    return not prefix[prefix.rfind("\n") + 1 :].strip()


def next_lines(after: str, lines: int = HEAD_LINES) -> str:
    """The rest of the cursor's line and the `lines` lines after it."""
    return "\n".join(after.split("\n")[: lines + 1])


def first_line(answer: str) -> str:
    """The answer up to the end of its first line of code (leading blank lines kept)."""
    start = len(answer) - len(answer.lstrip())
    end = answer.find("\n", start)
    return answer if end < 0 else answer[:end]


def body_below(line: str, after: str) -> bool:
    """`line` opens a block (ends with `:` or `{`) and the next line of code below the cursor
    is indented deeper: that code is the block's body."""
    if not line.rstrip().endswith((":", "{")):
        return False
    head = line.lstrip("\n")
    return deeper_below(head[: len(head) - len(head.lstrip(" \t"))], after)


def deeper_below(indent: str, after: str) -> bool:
    """The next line of code below the cursor is indented deeper than `indent`."""
    below = next((text for text in after.split("\n") if text.strip()), "")
    return len(below) - len(below.lstrip(" \t")) > len(indent)


def joined(answer: str, after: str) -> str:
    """`answer` as the text before `after` once inserted: a line of its own when `after` holds
    code on the cursor's line (an insertion before code ends with its line break)."""
    if after.startswith("\n") or answer.endswith("\n") or not answer:
        return answer
    return answer + "\n"


def scored_text(answer: str, after: str) -> str:
    """What is scored for a candidate: the answer as inserted and the next lines after it, in
    the file's own order (log P(answer + next lines | prompt))."""
    return joined(answer, after) + next_lines(after)


def needed_names(before: str, after: str, grammar: str | None,
                 lines: int = HEAD_LINES) -> list[str]:
    """Variables the next lines use that the text before the cursor never mentions, in the
    order they appear: not builtins or keywords, not attributes or fields, not a name those
    lines bind before they use it. Read with the grammar's parser, so that `.append` or a
    keyword argument is not taken for a name; without a grammar, nothing is needed."""
    if grammar is None:
        return []
    head = textwrap.dedent(next_lines(after, lines))
    if not head.strip():
        return []
    found: list[str] = []
    root = parse_tree(head, grammar).root_node
    # A lambda's parameters and a comprehension's loop names live in their own scope.
    seen = set(_NOT_NEEDED.get(grammar, frozenset())) | _scoped_names(root)
    for node in _variables(root):
        name = (node.text or b"").decode("utf-8", errors="replace")
        if not name or name in seen:
            continue
        seen.add(name)
        # Bound by the next lines themselves (`ans = 0` below the cursor): not missing.
        if not _binds(node) and not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", before):
            found.append(name)
    return found


#: Nodes that bind the names in one of their fields (`x = …`, `for x in …`, `const x`,
#: `x := …`, `let x`), per grammar spelling.
_BINDING_FIELDS = {
    "assignment": "left", "for_statement": "left", "for_in_statement": "left",
    "variable_declarator": "name", "short_var_declaration": "left", "range_clause": "left",
    "let_declaration": "pattern", "for_expression": "pattern",
}


def _binds(node: Node) -> bool:
    """`node` is a name being bound: in the binding field of an assignment, loop or
    declaration, directly or inside a destructuring pattern (`for e, o in …`)."""
    parent = node.parent
    while parent is not None:
        field = _BINDING_FIELDS.get(parent.type)
        if field is not None:
            target = parent.child_by_field_name(field)
            return target is not None and target.start_byte <= node.start_byte < target.end_byte
        if not (parent.type.endswith("pattern") or parent.type in ("pattern_list",
                                                                  "expression_list")):
            return False
        parent = parent.parent
    return False


#: Nodes whose field binds names for that node alone (a lambda's or closure's parameters, a
#: comprehension's `for x in`), per grammar spelling.
_SCOPED_FIELDS = {
    "lambda": "parameters", "for_in_clause": "left", "arrow_function": "parameters",
    "closure_expression": "parameters", "func_literal": "parameters",
}


def _scoped_names(root: Node) -> set[str]:
    """Names bound by a lambda, closure or comprehension anywhere in `root`."""
    names: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        field = _SCOPED_FIELDS.get(node.type)
        target = node.child_by_field_name(field) if field else None
        if node.type == "arrow_function" and target is None:
            target = node.child_by_field_name("parameter")  # `x => x + 1`
        if target is not None:
            inner = [target]
            while inner:
                part = inner.pop()
                if part.type == "identifier":
                    names.add((part.text or b"").decode("utf-8", errors="replace"))
                inner.extend(part.children)
        stack.extend(node.children)
    return names


def mentions(text: str, names: list[str]) -> bool:
    """Whether `text` has one of `names` as a whole word."""
    return bool(set(re.findall(r"\w+", text)) & set(names))


def _variables(root: Node) -> list[Node]:
    """`identifier` nodes that are not the attribute of an attribute access or the name of a
    keyword argument (Python spells both as plain identifiers)."""
    out: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "identifier":
            parent = node.parent
            field = None
            if parent is not None and parent.type in ("attribute", "keyword_argument"):
                field = "attribute" if parent.type == "attribute" else "name"
            if field is None or parent is None or parent.child_by_field_name(field) != node:
                out.append(node)
        stack.extend(reversed(node.children))
    return sorted(out, key=lambda n: n.start_byte)


def leads(name: str, grammar: str | None) -> list[str]:
    """The starts of a line binding `name` in `grammar`."""
    return [lead.format(name) for lead in BINDING_LEADS.get(grammar or "", ("{}",))]


def candidate_leads(needed: list[str], answer: str, before: str, after: str,
                    grammar: str | None, indent: str = "") -> list[str]:
    """The leads to generate candidates from, for the needed names `answer` does not mention:
    a helper's definition when the code below is a body and calls a function nothing defines
    (`indent` is the candidate line's, after what the cursor's line already has); each name's
    binding leads (its import first when the next lines use it as a standard module); then,
    when two names are needed and `answer` lacks one, the leads binding both."""
    missing = [name for name in needed if not mentions(answer, [name])]
    out: list[str] = []
    definition = DEFINITION_LEADS.get(grammar or "")
    if missing and definition is not None:
        line_indent = before[before.rfind("\n") + 1 :] + indent
        function = _undefined_call(before, after, grammar) \
            if deeper_below(line_indent, after) else None
        if function is not None:
            out.append(definition.format(function=function, params=", ".join(needed)))
    module = MODULE_LEADS.get(grammar or "")
    head = next_lines(after)
    for name in missing:
        if module is not None and name in module[1] \
                and re.search(rf"(?<![\w.]){re.escape(name)}\.\w", head):
            out.append(module[0].format(name))
        out.extend(leads(name, grammar))
    if len(needed) >= 2 and missing:
        out.extend(lead.format(*needed[:2]) for lead in PAIR_LEADS.get(grammar or "", ()))
    return out


#: Keywords of the brace languages that read like a call (`switch (x)`, `catch (e)`).
_CALL_LIKE_KEYWORDS = frozenset({
    "if", "for", "while", "switch", "catch", "function", "typeof", "return", "match", "fn",
    "func", "sizeof", "new", "await", "yield", "super", "this", "self",
})


def _undefined_call(before: str, after: str, grammar: str | None) -> str | None:
    """The first function the code below calls that nothing above mentions and nothing
    below defines (`def f`, `f = …`, `function f`, `fn f`, `func f`). One pass over each
    side: the rest of the file can be long."""
    skip = _NOT_NEEDED.get(grammar or "", frozenset()) | _CALL_LIKE_KEYWORDS
    above = set(re.findall(r"\w+", before))
    defined = set(re.findall(r"\b(?:def|function|fn|func)\s+(\w+)", after))
    defined.update(re.findall(r"(?<![\w.])(\w+)\s*=[^=]", after))
    for match in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)\s*\(", after):
        name = match.group(1)
        if not (name in skip or name in above or name in defined):
            return name
    return None


def lead_indent(answer: str, before: str, after: str) -> str:
    """The indentation a candidate starts with: the greedy answer's (the model's own choice
    for this line), else what the next line of code below the cursor has beyond the
    whitespace already typed on the cursor's line."""
    if answer.strip():
        first = answer.lstrip("\n")
        return first[: len(first) - len(first.lstrip(" \t"))]
    typed = before[before.rfind("\n") + 1 :]
    for line in after.split("\n"):
        if line.strip():
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            return indent[len(typed):] if indent.startswith(typed) else ""
    return ""

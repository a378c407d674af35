"""Drop a trailing Python block header that nothing will fill.

tree-sitter-python accepts `if x:` with no indented body (no ERROR or MISSING node), so
`syntax_validity` cannot see it, yet `compile()` rejects the file. The HumanEval analysis found
this as the most common broken answer of the embedded model: it opens a block where the hole
was a plain statement. If the completion's last line opens a block and the next line of the
file is not indented deeper, that header is cut (and with it an answer that was only that).
Before code on the cursor's line (`FilterContext.before_code`) the next line of the file is the
cursor's own line, which the answer is inserted before; the lines kept keep their line break.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.lines import indent_width

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext


def drop_dangling_block(text: str, ctx: FilterContext) -> str:
    if ctx.grammar != "python" or not text.strip():
        return text
    lines = text.rstrip("\n").split("\n")
    last = lines[-1]
    code = last.split("#", 1)[0].rstrip()
    if not code.endswith(":") or code.lstrip().startswith(("lambda", "#")):
        return text
    cursor_line = ctx.prefix[ctx.prefix.rfind("\n") + 1 :]
    header = cursor_line + last if len(lines) == 1 else last
    following = ctx.suffix[ctx.suffix.find("\n") + 1 :] if "\n" in ctx.suffix else ""
    rest_of_line = ctx.suffix.split("\n", 1)[0]
    if ctx.before_code:
        nxt = cursor_line + rest_of_line
    elif rest_of_line.strip():
        return text  # code follows on the same line: not a header the user is finishing
    else:
        nxt = next((row for row in following.split("\n") if row.strip()), "")
    if nxt.strip() and indent_width(nxt) > indent_width(header):
        return text  # the file already has the body
    kept = "\n".join(lines[:-1])
    if not kept.strip():
        return ""
    return kept + "\n" if ctx.before_code else kept

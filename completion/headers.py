"""What a trimmed window keeps of the text above it: imports and enclosing scope headers.

When the prefix window starts inside a class or function, the model would see a body without
its signature. The lines that open the enclosing scopes (and the file's imports) are put back in
front of the window, each followed by a marker comment (`# ...`) so the model sees a coherent,
visibly elided file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ghostfill.completion.languages import IMPORT_NODES, comment_prefix
from ghostfill.completion.scopes import enclosing_scopes
from ghostfill.completion.syntax import SyntaxDocument


@dataclass(frozen=True)
class Head:
    """Text to put before the window, and the document lines it came from."""

    text: str
    lines: tuple[int, ...]


def head_for(doc: SyntaxDocument, text: str, starts: list[int], window_start: int) -> Head:
    """Imports and enclosing headers above `window_start` (empty when nothing is cut)."""
    grammar = doc.grammar if doc.tree is not None else None
    marker = comment_prefix(grammar)
    if window_start <= 0 or marker is None or doc.tree is None:
        return Head("", ())
    start_line = _line_of(starts, window_start)
    chosen: list[int] = []
    for node in doc.tree.root_node.children:
        if node.start_point[0] >= start_line:
            break
        if node.type in IMPORT_NODES.get(grammar or "", ()):
            chosen.extend(range(node.start_point[0], node.end_point[0] + 1))
    parts: list[str] = []
    if chosen:
        parts.extend(_line(text, starts, i) for i in chosen)
        parts.append(f"{marker} ...")
    lines = list(chosen)
    for first, last in enclosing_scopes(doc, window_start):
        if first >= start_line:
            break
        header = [i for i in range(first, min(last, start_line - 1) + 1)]
        parts.extend(_line(text, starts, i) for i in header)
        body_indent = _indent(_line(text, starts, header[0])) + "    "
        parts.append(f"{body_indent}{marker} ...")
        lines.extend(header)
    if not parts:
        return Head("", ())
    return Head("\n".join(parts) + "\n", tuple(lines))


def _line_of(starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(starts, offset) - 1


def _line(text: str, starts: list[int], line: int) -> str:
    end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    return text[starts[line] : end].rstrip("\r")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]

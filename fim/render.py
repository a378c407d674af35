"""Render a template into token ids.

Control tokens are inserted by id and user text is tokenized as plain text, so a buffer that
contains `<fim_middle>` stays text. Each part keeps its own ids: `ghostfill prompt` reports
them, and the context builder, which has already tokenized the windows, passes them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ghostfill.completion.tokenizer import Tokenizer
from ghostfill.errors import TemplateError
from ghostfill.fim.templates import FimTemplate, Order


@dataclass(frozen=True)
class PromptPart:
    role: str  # bos | control | context | prefix | suffix | lead
    text: str
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Prompt:
    template: FimTemplate
    order: Order
    parts: tuple[PromptPart, ...]
    stop_ids: frozenset[int]

    @property
    def tokens(self) -> list[int]:
        out: list[int] = []
        for part in self.parts:
            out.extend(part.tokens)
        return out

    def display(self) -> str:
        """The prompt as text, control tokens spelled out."""
        return "".join(p.text for p in self.parts)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for part in self.parts:
            counts[part.role] = counts.get(part.role, 0) + len(part.tokens)
        counts["total"] = sum(len(p.tokens) for p in self.parts)
        return counts


def _control(tokenizer: Tokenizer, piece: str) -> PromptPart:
    token_id = tokenizer.special_id(piece)
    if token_id is None:
        raise TemplateError(f"the model's vocabulary has no control token {piece}")
    return PromptPart("control", piece, (token_id,))


def _text(tokenizer: Tokenizer, role: str, text: str, ids: Sequence[int] | None) -> PromptPart:
    tokens = tuple(ids) if ids is not None else tuple(tokenizer.encode(text))
    return PromptPart(role, text, tokens)


def stop_ids(template: FimTemplate, tokenizer: Tokenizer) -> frozenset[int]:
    ids = set(tokenizer.eos_ids)
    for piece in template.control_tokens:
        token_id = tokenizer.special_id(piece)
        if token_id is not None:
            ids.add(token_id)
    return frozenset(ids)


def overhead_tokens(template: FimTemplate, tokenizer: Tokenizer) -> int:
    """Tokens a prompt spends besides prefix, suffix and cross-file context."""
    empty = render_prompt(template, tokenizer, "", "", order=template.orders[0])
    return len(empty.tokens)


#: What the header of the suffix block says after the document's path (`after_cursor_header`).
AFTER_CURSOR = "(after the cursor)"


def after_cursor_header(path: str, comment: str | None) -> str:
    """The comment line over the suffix block of a prefix-only prompt."""
    mark = comment or "//"
    return f"{mark} {path} {AFTER_CURSOR}\n" if path else f"{mark} {AFTER_CURSOR}\n"


def _context_parts(template: FimTemplate, tokenizer: Tokenizer,
                   files: Sequence[tuple[str, str]], path: str,
                   comment: str | None, suffix_block: str = "") -> list[PromptPart]:
    if suffix_block and not template.is_fim:
        # The code after the cursor, shown to a model without FIM tokens the way a snippet of
        # another file is: before the prefix, under its own path comment, so that it stays the
        # same while the user types at the cursor (only the prompt's tail changes).
        mark = comment or "//"
        blocks = [f"{mark} {name}\n{text}\n" for name, text in files]
        top = "\n".join(blocks) + ("\n" if blocks else "") + after_cursor_header(path, comment)
        return [_text(tokenizer, "context", top, None),
                _text(tokenizer, "suffix", suffix_block, None),
                _text(tokenizer, "context", f"\n{mark} {path}\n" if path else "\n", None)]
    if not files:
        return []
    sep = template.file_sep_token
    if sep is not None and tokenizer.special_id(sep) is not None:
        parts: list[PromptPart] = []
        for name, text in files:
            parts += [_control(tokenizer, sep), _text(tokenizer, "context", f"{name}\n{text}\n",
                                                       None)]
        parts += [_control(tokenizer, sep), _text(tokenizer, "context", f"{path}\n", None)]
        return parts
    mark = comment or "//"
    blocks = [f"{mark} {name}\n{text}\n" for name, text in files]
    return [_text(tokenizer, "context", "\n".join(blocks) + f"\n{mark} {path}\n", None)]


def render_prompt(
    template: FimTemplate,
    tokenizer: Tokenizer,
    prefix: str,
    suffix: str,
    *,
    order: Order = "psm",
    context_files: Sequence[tuple[str, str]] = (),
    path: str = "",
    comment: str | None = "#",
    prefix_ids: Sequence[int] | None = None,
    suffix_ids: Sequence[int] | None = None,
    suffix_block: str = "",
) -> Prompt:
    """`context_files` are (path, text) snippets of other files, placed before everything:
    with the family's file-separator token where it has one (StarCoder2, Qwen2.5-Coder),
    otherwise as text under a path comment.

    `suffix_block` (prefix-only templates; `completion.suffixLayout = "before-prefix"`): the
    code after the cursor, placed after the snippets and before the prefix under the comment
    `<path> (after the cursor)`; the prefix then follows under its own path comment. A FIM
    template ignores it (its suffix goes where the family was trained to see it)."""
    if order not in template.orders:
        order = template.orders[0]
    parts: list[PromptPart] = []
    if tokenizer.add_bos and tokenizer.bos_id is not None:
        parts.append(PromptPart("bos", "", (tokenizer.bos_id,)))
    ctx = _context_parts(template, tokenizer, context_files, path, comment, suffix_block)
    pre = _text(tokenizer, "prefix", prefix, prefix_ids)
    if not template.is_fim:
        parts += [*ctx, pre]
        return Prompt(template, "psm", tuple(parts), stop_ids(template, tokenizer))

    suf = _text(tokenizer, "suffix", suffix, suffix_ids)
    p_tok = _control(tokenizer, template.prefix_token or "")
    s_tok = _control(tokenizer, template.suffix_token or "")
    lead = [_text(tokenizer, "lead", template.prefix_lead, None)] if template.prefix_lead else []
    mlead = [_text(tokenizer, "lead", template.middle_lead, None)] if template.middle_lead else []
    if template.middle_token is None:
        # Codestral: [SUFFIX]{suffix}[PREFIX]{prefix}, generation continues the prefix.
        parts += [*ctx, s_tok, suf, p_tok, *lead, pre]
    elif order == "psm":
        m_tok = _control(tokenizer, template.middle_token)
        parts += [*ctx, p_tok, *lead, pre, s_tok, suf, *mlead, m_tok]
    else:
        # SPM as trained by StarCoder/CodeLlama: the suffix first, the prefix last, so a
        # keystroke only changes the tail of the prompt and the KV cache stays valid.
        m_tok = _control(tokenizer, template.middle_token)
        parts += [*ctx, p_tok, s_tok, suf, *mlead, m_tok, *lead, pre]
    return Prompt(template, order, tuple(parts), stop_ids(template, tokenizer))

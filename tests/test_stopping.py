"""Stop rules, checked on text as it grows token by token."""

from __future__ import annotations

from ghostfill.completion.stopping import LineStopper, statement_length


def first_stop(stopper: LineStopper, text: str) -> str:
    """Feed `text` one character at a time, as a backend would, and return what is kept."""
    for n in range(1, len(text) + 1):
        cut = stopper.check(text[:n])
        if cut is not None:
            return text[:n][:cut]
    return text


def test_single_line_stops_at_the_newline():
    s = LineStopper(multiline=False, cursor_line_prefix="    x = ")
    assert first_stop(s, "compute(a)\n    y = 2\n") == "compute(a)"


def test_single_line_after_a_block_opener_takes_the_next_line():
    s = LineStopper(multiline=False, cursor_line_prefix="def f(x):")
    assert first_stop(s, "\n    return x + 1\n    print(x)\n") == "\n    return x + 1"


def test_multiline_stops_at_dedent_and_blank_line():
    s = LineStopper(multiline=True, block_indent=4, cursor_line_prefix="    ")
    assert first_stop(s, "a = 1\n    b = 2\nc = 3\n") == "a = 1\n    b = 2"
    assert first_stop(s, "a = 1\n\n    b = 2\n") == "a = 1"


def test_multiline_stops_where_the_suffix_begins():
    s = LineStopper(multiline=True, block_indent=4, cursor_line_prefix="    ",
                    next_line="    return total")
    assert first_stop(s, "total = sum(v)\n    return total\n") == "total = sum(v)"


def test_auto_closed_brace_keeps_the_line_break():
    s = LineStopper(multiline=True, block_indent=2, cursor_line_prefix="int f() {",
                    cursor_line_rest="}")
    assert first_stop(s, "\n  return 1;\n}\n") == "\n  return 1;\n"


def test_deadline_keeps_whole_lines_of_a_block():
    s = LineStopper(multiline=True, block_indent=0)
    assert s.cut_at_deadline("a = 1\nb = 2\nc = ") == "a = 1\nb = 2"
    # No line finished yet: the first line up to its last whole word.
    assert s.cut_at_deadline("total = compute(val") == "total = compute("
    assert s.cut_at_deadline("a = ") == "a ="


def test_deadline_cuts_one_line_at_its_last_whole_word():
    s = LineStopper(multiline=False, cursor_line_prefix="    x = ")
    assert s.cut_at_deadline("self.comp") == "self."
    assert s.cut_at_deadline("foo(a, b") == "foo(a,"
    assert s.cut_at_deadline("value") == ""  # maybe half a name: nothing yet
    # After `def f():` the one line is the next one.
    s = LineStopper(multiline=False, cursor_line_prefix="def f(x):")
    assert s.cut_at_deadline("\n    return x + to") == "\n    return x +"


def test_a_line_like_the_suffix_but_deeper_is_part_of_the_answer():
    s = LineStopper(multiline=True, block_indent=4, cursor_line_prefix="    ",
                    next_line="    return False")
    assert first_stop(s, "else:\n        return False\n    return False\n") == \
        "else:\n        return False"


def test_from_a_blank_line_the_first_line_sets_the_block():
    # A hole at column 0: the cursor's indentation says nothing; the first line written does.
    s = LineStopper(multiline=True, block_indent=0, cursor_line_prefix="")
    text = "    for v in values:\n        total += v\nprint(total)\n"
    assert first_stop(s, text) == "    for v in values:\n        total += v"
    # A cursor after typed indentation keeps the usual rule: the block is the cursor's.
    s = LineStopper(multiline=True, block_indent=4, cursor_line_prefix="    ")
    text = "for v in values:\n        total += v\n    return total\n"
    assert first_stop(s, text) == text


# -------------------------------------------------------- insertions before code (#18)

def before(line: str, *, multiline: bool, block_indent: int | None = None,
           column: int = 0) -> LineStopper:
    """The stop rules `prepare` builds with the cursor at `column` of `line`, which holds
    code: the answer is inserted before it."""
    return LineStopper(multiline=multiline,
                       block_indent=len(line) - len(line.lstrip()) if block_indent is None
                       else block_indent,
                       cursor_line_prefix=line[:column], next_line=line,
                       cursor_line_rest=line[column:], before_code=True)


def test_before_code_one_line_ends_with_its_line_break():
    # The example: without the line break, accepting it joined the two statements.
    s = before("    return True", multiline=False)
    assert first_stop(s, "            return False\n    return True\n") == \
        "            return False\n"


def test_before_code_a_block_ends_with_the_line_break_of_its_last_line():
    s = before("    return total", multiline=True)
    text = "    for v in values:\n        total += v\nprint(total)\n"
    assert first_stop(s, text) == "    for v in values:\n        total += v\n"
    # A blank line ends it too, with the line break of the line before it.
    assert first_stop(s, "    a = 1\n\n    b = 2\n") == "    a = 1\n"


def test_before_code_the_line_it_goes_before_ends_the_answer():
    s = before("    return total", multiline=True)
    assert first_stop(s, "    total = sum(v)\n    return total\n    print(x)\n") == \
        "    total = sum(v)\n"
    # Written first: there is nothing to insert.
    assert first_stop(s, "    return total\n    x = 1\n") == ""
    # The same words deeper are a body line, not that line.
    assert first_stop(s, "    if x:\n        return total\n") == "    if x:\n        return total\n"


def test_before_code_lines_may_not_be_indented_less_than_the_line():
    # Below a block opener the body's depth is the floor (`cursor_scope` says so).
    s = before("    return total", multiline=True, block_indent=8)
    assert first_stop(s, "        total += v\n    x = 2\n") == "        total += v\n"


def test_before_code_at_the_deadline_only_whole_lines_show():
    s = before("    return True", multiline=True)
    assert s.cut_at_deadline("    a = 1\n    b = comp") == "    a = 1\n"
    # Half a line accepted there would join the code after it: nothing yet.
    assert s.cut_at_deadline("    total = comp") == ""
    s = before("    return True", multiline=False)
    assert s.cut_at_deadline("    a = 1\n    b") == "    a = 1\n"


def test_before_code_from_inside_the_indentation():
    # The first line continues after the cursor's two spaces.
    s = before("    return y", multiline=False, column=2)
    assert first_stop(s, "  print(y)\n    return y\n") == "  print(y)\n"
    assert first_stop(s, "  return y\n") == ""


def test_before_code_one_statement_takes_the_block_its_header_opens():
    # A header before a line that is not its body: the statement is the header and its body.
    s = before("    return ret", multiline=False)
    text = "    while x > 0:\n        ret += 1\n        x -= 1\n    return ret\n"
    assert first_stop(s, text) == "    while x > 0:\n        ret += 1\n        x -= 1\n"
    # Clauses at the header's depth go on with it; the next statement does not.
    text = "    if a:\n        b()\n    else:\n        c()\n    d()\n"
    assert first_stop(s, text) == "    if a:\n        b()\n    else:\n        c()\n"
    # The line below is the body: the header alone.
    s = before("        return x", multiline=False)
    assert first_stop(s, "    if x:\n        y = 1\n") == "    if x:\n"
    # Braces: the closing line is the statement's last.
    s = before("  return total;", multiline=False)
    text = "  for (const v of values) {\n    total += v;\n  }\n  log(total);\n"
    assert first_stop(s, text) == "  for (const v of values) {\n    total += v;\n  }\n"
    text = "  if (a) {\n    b();\n  } else {\n    c();\n  }\n"
    assert first_stop(s, text) == text


def test_statement_length():
    assert statement_length(["    x = 1"], 4) == 1
    assert statement_length(["    if x:"], 8) == 1  # the body is the code below
    assert statement_length(["    if x:", "        y()"], 4) is None  # still open
    assert statement_length(["    if x:", "        y()", "    elsewhere = 1"], 4) == 2
    assert statement_length(["    # note:", "    y()"], 4) == 1

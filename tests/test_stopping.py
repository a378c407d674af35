"""Stop rules, checked on text as it grows token by token."""

from __future__ import annotations

from ghostfill.completion.stopping import LineStopper


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

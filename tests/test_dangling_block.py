"""The dangling-block filter: a Python block header that nothing will fill is cut."""

from __future__ import annotations

from ghostfill.completion.postprocess import FilterContext, postprocess


def ctx(prefix: str, suffix: str, multiline: bool = False) -> FilterContext:
    return FilterContext(prefix=prefix, suffix=suffix, grammar="python", multiline=multiline,
                         block_indent=4)


def test_a_lone_header_where_a_statement_belongs_is_dropped():
    c = ctx("def f(xs):\n    total = 0\n    ", "\n    return total\n")
    assert postprocess("if total > 3:", c) == ""


def test_a_trailing_header_is_cut_from_a_block_answer():
    c = ctx("def f(x):\n    ", "\n    return False\n", multiline=True)
    assert postprocess("if x:\n        return True\n    else:", c) == "if x:\n        return True"


def test_a_header_whose_body_follows_in_the_file_is_kept():
    c = ctx("def f(x):\n    ", "\n        return 1\n")
    assert postprocess("if x > 0:", c) == "if x > 0:"


def test_other_languages_are_untouched():
    c = FilterContext(prefix="fn f() {\n    ", suffix="\n}\n", grammar="rust", multiline=False,
                      block_indent=4)
    assert postprocess("let x = 1;", c) == "let x = 1;"

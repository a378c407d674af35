"""The commit replay (bench/edit_replay.py): holes mined from a tiny git history, and the
replay's edits producing the commit's text up to the target line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ghostfill.bench import edit_replay as er

BEFORE = '''def area(w, h):
    return w * h


def perimeter(w, h):
    return 2 * (w + h)


def describe(w, h):
    """A shape."""
    return f"{w}x{h}"
'''
AFTER = '''def area(w, h, scale=1):
    return w * h * scale


def perimeter(w, h, scale=1):
    return 2 * (w + h) * scale


def describe(w, h, scale=1):
    """A shape."""
    return f"{w}x{h} at {scale}"
'''


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def test_a_commit_with_several_hunks_gives_a_hole_whose_replay_rebuilds_its_text(
        tmp_path: Path):
    repo = tmp_path / "shapes"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "shapes.py").write_text(BEFORE)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    (repo / "shapes.py").write_text(AFTER)
    _git(repo, "commit", "-qam", "scale")
    [hole] = er.holes_in("shapes", str(repo / ".git"))
    # The last hunk with a line worth asking for; the three before it are the edits.
    assert hole.truth == 'return f"{w}x{h} at {scale}"'
    assert len(hole.hunks) == 3 and hole.same_file_edits == 3
    # Replaying the earlier hunks and the target's lines before it, text-wise as the LSP
    # edits do, gives the commit's text up to the target line.
    lines = BEFORE.split("\n")
    shift = 0
    for h in hole.hunks:
        a, b, text = er._range_edit(lines, h.old_start + shift, len(h.old), list(h.new))
        joined = "\n".join(lines)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        lines = (joined[:starts[a[0]] + a[1]] + text + joined[starts[b[0]] + b[1]:]).split("\n")
        shift += len(h.new) - len(h.old)
    assert "\n".join(lines).startswith(AFTER[: AFTER.index('    return f"')])


def test_diff_parsing_keeps_files_hunks_and_lines_in_order():
    diff = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
        "@@ -3 +3 @@ def f():\n-    a = 1\n+    a = 2\n"
        "@@ -10,0 +11,2 @@\n+b = 1\n+c = 2\n"
        "diff --git a/y.py b/y.py\n--- a/y.py\n+++ b/y.py\n"
        "@@ -1,2 +0,0 @@\n-import os\n-import sys\n")
    hunks = er.parse_diff(diff)
    assert [(h.file, h.old_start, h.old, h.new, h.new_start) for h in hunks] == [
        ("x.py", 2, ("    a = 1",), ("    a = 2",), 2),
        ("x.py", 10, (), ("b = 1", "c = 2"), 10),
        ("y.py", 0, ("import os", "import sys"), (), 0),
    ]

"""The repo-level benchmark (bench/repo.py, bench/repo_holes.py) on a tiny package.

The package (two modules, one importing from the other) is written into tmp_path, so nothing
is downloaded. The end-to-end run drives the real `ghostfill serve` over stdio with a scripted
engine in place of the model (tests/scripted_server.py), and the JSON must hold the answers
that came back and figures computed from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pygls.lsp.client import LanguageClient

from ghostfill.bench import repo, repo_holes
from tests.conftest import vocab

HERE = Path(__file__).resolve().parent
SCRIPTED = HERE / "scripted_server.py"
#: `tests/scripted_server.py` in the server's process, whatever arguments the engine's
#: `create_backend` passes on.
LAUNCHER = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("scripted_server", {str(SCRIPTED)!r})
scripted_server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scripted_server)
scripted_server._install()
from ghostfill.backends import factory
scripted = factory.create_backend
factory.create_backend = lambda config, on_progress=None, *rest: scripted(config, on_progress)
from ghostfill.cli import main
sys.exit(main(["serve"]))
"""

GEOMETRY = '''"""Shapes' arithmetic."""

UNIT = "cm"


def scale_area(width, height, factor):
    """The area of a width x height rectangle, times factor."""
    return width * height * factor
'''
SHAPES = '''"""Shapes."""

from .geometry import UNIT, scale_area
from . import geometry


def describe(width, height):
    area = scale_area(width, height, 2)
    label = f"{area} {UNIT}"
    return label


def doubled(width):
    unit = geometry.UNIT.upper()
    return scale_area(width, width, 2), unit


def local(width):
    return width * 2
'''
#: (line 1-based, text, name, defined in, kind): every hole of the package.
HOLES = [
    (8, "area = scale_area(width, height, 2)", "scale_area", "geometry", "name"),
    (9, 'label = f"{area} {UNIT}"', "UNIT", "geometry", "name"),
    (14, "unit = geometry.UNIT.upper()", "geometry", "geometry", "module"),
    (15, "return scale_area(width, width, 2), unit", "scale_area", "geometry", "name"),
]


def make_package(root: Path) -> Path:
    package = root / "proj" / "tinypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "geometry.py").write_text(GEOMETRY)
    (package / "shapes.py").write_text(SHAPES)
    tests = package / "tests"  # not the package's code: no holes from it
    tests.mkdir()
    (tests / "__init__.py").write_text("")
    (tests / "test_shapes.py").write_text(
        "from tinypkg.shapes import describe\n\n\ndef test_it():\n"
        "    assert describe(1, 2) == '4 cm'\n")
    return root / "proj"


def test_holes_are_lines_that_use_another_modules_names(tmp_path):
    root = make_package(tmp_path)
    proj = repo_holes.fetch(str(root))
    assert proj.packages == ("tinypkg",) and proj.base == root.resolve()
    assert set(repo_holes.modules(proj)) == {"tinypkg", "tinypkg.geometry", "tinypkg.shapes"}
    holes = repo_holes.holes_in(proj)
    assert [(h.line + 1, h.truth, h.name, Path(h.defined_in).stem, h.kind) for h in holes] \
        == HOLES
    for h in holes:
        assert h.file == "tinypkg/shapes.py" and h.defined_in == "tinypkg/geometry.py"
        assert h.column == 4 and h.id == f"proj:tinypkg/shapes.py:{h.line + 1}"
        erased = repo_holes.erase((root / h.file).read_text(), h).split("\n")
        assert erased[h.line] == "    "  # the indentation stays: the cursor's place
        assert erased[: h.line] == SHAPES.split("\n")[: h.line]
    # Deterministic for a seed; the per-file cap holds.
    picked = repo_holes.sample({"proj": holes}, 3, seed=7, per_file=3)
    assert picked == repo_holes.sample({"proj": holes}, 3, seed=7, per_file=3)
    assert len(picked) == 3 and len(set(picked)) == 3
    assert len(repo_holes.sample({"proj": holes}, 9, seed=7, per_file=2)) == 2


def test_the_tree_names_every_modified_file_whole(tmp_path):
    # `git status --porcelain` starts with the first file's status column (" M"): stripping
    # the whole output took that space and the name's first letter with it.
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    names = ["alpha.py", "beta.py", "name with spaces.py", "zeta.py"]
    for name in names:
        (tmp_path / name).write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    for name in names[:3]:
        (tmp_path / name).write_text("x = 2\n")
    git("add", "beta.py")
    git("mv", "zeta.py", "omega.py")
    (tmp_path / "untracked.py").write_text("")
    tree = repo._tree(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tree["commit"] == head
    assert sorted(tree["modified"]) == sorted([*names[:3], "omega.py"])


def test_scores():
    assert repo.levenshtein("kitten", "sitting") == 3
    assert repo.levenshtein("", "abc") == 3 and repo.levenshtein("abc", "abc") == 0
    assert repo.edit_similarity("", "") == 1.0
    assert repo.edit_similarity("abcd", "abce") == 0.75
    assert repo.first_line("  x = f(y)  \n  return x") == "x = f(y)"
    # Keywords and string contents are not identifiers; a line cut short keeps its start.
    assert repo.identifiers('raise Error("Missing Host header") from exc') == ["Error", "exc"]
    assert repo.identifiers("value = call(a, b") == ["value", "call", "a", "b"]
    assert repo.identifiers('x = "unterminated') == ["x"]
    s = repo.identifier_scores("x = f(a)", "x = f(a, b)")
    assert s["identifier_em"] == 0.0 and s["identifier_precision"] == 1.0
    assert s["identifier_recall"] == 0.75 and round(s["identifier_f1"], 4) == 0.8571
    assert repo.identifier_scores("", "")["identifier_f1"] == 1.0
    assert repo.identifier_scores("", "x = 1")["identifier_f1"] == 0.0
    assert repo.uses_name("y = geometry.UNIT", "geometry")
    assert not repo.uses_name("y = 'geometry'", "geometry")
    scored = repo.score("area = scale_area(w, h, 2)\nmore", "area = scale_area(width, height, 2)",
                        "scale_area")
    assert scored["first_line"] == "area = scale_area(w, h, 2)" and not scored["exact"]
    assert scored["name_used"] and 0 < scored["edit_similarity"] < 1


@pytest.mark.parametrize("servers", ["per-hole", "per-condition"])
def test_repo_bench_reports_the_answers_it_got(tmp_path, monkeypatch, servers):
    vocab("starcoder")  # the scripted engine's tokenizer; skips without it
    root = make_package(tmp_path)
    script = tmp_path / "script.json"
    answer = HOLES[0][1]
    script.write_text(json.dumps({"answer": answer, "token_ms": 0}))
    start_io = LanguageClient.start_io
    started: list[dict[str, str]] = []

    async def scripted(self, cmd, *args, **kwargs):
        assert args[-2:] == ("ghostfill", "serve")
        env = {**kwargs.get("env", os.environ), "GHOSTFILL_SCRIPT": str(script)}
        started.append(env)
        return await start_io(self, sys.executable, "-c", LAUNCHER, env=env)

    monkeypatch.setattr(LanguageClient, "start_io", scripted)
    out = tmp_path / "results"
    assert repo.main(["--packages", str(root), "--holes", "2", "--seed", "1",
                      "--engine", "inprocess", "--servers", servers, "--out", str(out)]) == 0

    [path] = out.glob("repo-custom-*.json")
    assert path.with_suffix(".png").stat().st_size > 0
    data = json.loads(path.read_text())
    assert data["command"].startswith("python -m ghostfill.bench.repo --packages")
    conditions = ["off", "ring", "definitions", "both"]
    assert list(data["summary"]) == conditions
    # Per hole: fresh servers for the three cross-file conditions; `off` keeps its own.
    assert len(started) == (1 + 3 * 2 if servers == "per-hole" else 4)
    assert data["meta"]["servers"] == servers
    assert all(env["GHOSTFILL_RUNTIME_DIR"] for env in started)
    assert data["conditions"]["off"]["settings"]["context"] == {"crossFile": False}
    assert data["conditions"]["ring"]["settings"]["context"]["importDefinitions"] is False
    assert data["conditions"]["definitions"]["module_open"] is False
    assert data["conditions"]["both"]["settings"]["completion"]["multiline"] == "never"

    holes = data["holes"]
    expected = repo_holes.sample({"proj": repo_holes.holes_in(repo_holes.fetch(str(root)))},
                                 2, seed=1, per_file=3)
    assert [(h["line"], h["truth"]) for h in holes] == [(e.line + 1, e.truth) for e in expected]
    for h in holes:
        assert list(h["answers"]) != [] and set(h["answers"]) == set(conditions)
        for a in h["answers"].values():
            assert a["error"] is None and a["latency_ms"] > 0
            # The scores are those of the answer that came back.
            assert {k: a[k] for k in repo.score(a["text"], h["truth"], h["name"])} \
                == repo.score(a["text"], h["truth"], h["name"])
            if a["text"]:
                assert a["source"] and answer.startswith(a["text"].strip())
    texts = [a["text"] for h in holes for a in h["answers"].values()]
    assert any(t.strip() == answer for t in texts)  # the scripted engine's line reached us
    for c in conditions:
        s = data["summary"][c]
        rows = [h["answers"][c] for h in holes]
        assert s["holes"] == 2 and s["errors"] == 0
        assert s["exact"] == sum(a["exact"] for a in rows)
        assert s["exact"] == sum(a["first_line"] == h["truth"] for a, h in zip(rows, holes,
                                                                              strict=True))
        assert s["shown"] == sum(bool(a["text"]) for a in rows)
        assert s["name_used"] == sum(a["name_used"] for a in rows)
        assert s["edit_similarity"] == round(sum(a["edit_similarity"] for a in rows) / 2, 4)
        assert s["latency_p50_ms"] > 0
    exact_hole = [h for h in holes if h["truth"] == answer]
    if exact_hole:  # the answer is that hole's line: exact in every condition
        assert all(a["exact"] for a in exact_hole[0]["answers"].values())
    assert set(data["goals"]) == {"ring", "definitions", "both"}
    assert set(data["paired"]["both"]) == {"exact_both_only", "exact_off_only",
                                           "es_both_better", "es_off_better"}
    # Every request reached the scripted model (nothing answered from a cache).
    log = [json.loads(line) for line in Path(f"{script}.log").read_text().splitlines()]
    assert sum("prompt_tail" in entry for entry in log) >= 2 * len(conditions)

    # The journal has every hole's answers: resuming it asks nothing again, and reports the
    # same answers, for the whole sample or its start; a journal of other holes is refused.
    [journal] = out.glob("repo-custom-*.jsonl")
    assert data["journal"] == str(journal)
    before = len(started)
    args = ["--packages", str(root), "--holes", "2", "--seed", "1", "--engine", "inprocess",
            "--servers", servers, "--out", str(out / "again"), "--no-plot"]
    assert repo.main([*args, "--resume", str(journal)]) == 0
    assert len(started) == before
    [again] = (out / "again").glob("repo-custom-*.json")
    resumed = json.loads(again.read_text())
    assert resumed["holes"] == data["holes"] and resumed["summary"] == data["summary"]
    # Cut short: the first hole of the sample, from the same journal.
    args[args.index("--holes") + 1] = "1"
    args[args.index("--out") + 1] = str(out / "cut")
    assert repo.main([*args, "--resume", str(journal)]) == 0
    assert len(started) == before
    [cut] = (out / "cut").glob("repo-custom-*.json")
    assert json.loads(cut.read_text())["holes"] == data["holes"][:1]
    with pytest.raises(SystemExit):
        repo.main([*args, "--seed", "2", "--resume", str(journal)])

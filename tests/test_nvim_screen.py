"""What a Neovim user sees: a real Neovim in a real terminal (tmux), keys typed with
`tmux send-keys`, the screen read back with `tmux capture-pane -e` (text and colours).

Neovim is configured with the lines the READMEs print, read from them at test time:
editors/nvim/README.md's `vim.opt.rtp:prepend(...)` + `require('ghostfill').setup{}` for the
plugin, and its recipe for Neovim 0.12's built-in client. The server is `ghostfill serve` from
this Python's bin folder (the default `cmd`), with the default model.

Nothing here measures time: every wait polls the screen (or a written file) with a generous
timeout, so a slow or loaded machine only makes the run longer.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import EXAMPLES, ROOT
from tests.test_nvim_plugin import _version, find_nvim

pytestmark = pytest.mark.slow

PLUGIN = ROOT / "editors" / "nvim"
WIDTH, HEIGHT = 160, 45
#: The first ghost text of a session also waits for the server to start and load the model.
FIRST_TIMEOUT_S = 120
TIMEOUT_S = 90

#: examples/stats.py ends with an indented empty line (row 19) in `stdev`'s body.
STATS = (EXAMPLES / "stats.py").read_text()
#: 1-based: the screen row is the buffer line (no tabline, nothing wraps or scrolls).
STATS_ROW = len(STATS.rstrip("\n").split("\n"))
STATS_LINE = STATS.rstrip("\n").split("\n")[-1]
assert STATS_LINE and not STATS_LINE.strip(), "examples/stats.py lost its last, indented line"

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# The screen: capture-pane -e output parsed into cells with their style


@dataclass(frozen=True)
class Style:
    """What a cell looks like: colours as ("index", n) or ("rgb", r, g, b), None = default."""

    fg: tuple[Any, ...] | None = None
    bg: tuple[Any, ...] | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False

    def describe(self) -> str:
        parts = [f"fg={self.fg}" if self.fg else "fg=default"]
        parts += [a for a in ("bold", "dim", "italic", "underline", "reverse") if getattr(self, a)]
        return " ".join(parts)


_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_FLAGS = {1: ("bold", True), 2: ("dim", True), 3: ("italic", True), 4: ("underline", True),
          7: ("reverse", True), 22: ("bold", False), 23: ("italic", False),
          24: ("underline", False), 27: ("reverse", False)}


def _apply_sgr(style: dict[str, Any], params: str) -> None:
    codes = [int(p.split(":")[0] or 0) for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.clear()
        elif c in _FLAGS:
            name, value = _FLAGS[c]
            style[name] = value
            if c == 22:
                style["dim"] = False
        elif 30 <= c <= 37 or 90 <= c <= 97:
            style["fg"] = ("index", c - 30 if c < 90 else c - 90 + 8)
        elif 40 <= c <= 47 or 100 <= c <= 107:
            style["bg"] = ("index", c - 40 if c < 100 else c - 100 + 8)
        elif c == 39:
            style.pop("fg", None)
        elif c == 49:
            style.pop("bg", None)
        elif c in (38, 48, 58) and i + 1 < len(codes):
            if codes[i + 1] == 5 and i + 2 < len(codes):
                colour: tuple[Any, ...] = ("index", codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                colour = ("rgb", *codes[i + 2:i + 5])
                i += 4
            else:
                colour = ("?",)
                i += 1
            if c != 58:  # (the underline colour does not matter here)
                style["fg" if c == 38 else "bg"] = colour
        i += 1


@dataclass
class Row:
    text: str
    styles: list[Style] = field(repr=False)

    def marked(self, ghost: Style) -> str:
        """The row as plain text with the cells in style `ghost` between ‹ and ›."""
        out, inside = [], False
        for ch, st in zip(self.text, self.styles, strict=True):
            if (st == ghost) != inside:
                out.append("‹" if not inside else "›")
                inside = not inside
            out.append(ch)
        return "".join(out) + ("›" if inside else "")


def parse_screen(captured: str) -> list[Row]:
    rows = []
    for line in captured.split("\n")[:HEIGHT]:
        style: dict[str, Any] = {}
        text: list[str] = []
        styles: list[Style] = []
        pos = 0
        for m in _SGR.finditer(line):
            for ch in line[pos:m.start()]:
                text.append(ch)
                styles.append(Style(**style))
            _apply_sgr(style, m.group(1))
            pos = m.end()
        for ch in line[pos:]:
            text.append(ch)
            styles.append(Style(**style))
        rows.append(Row("".join(text), styles))
    return rows


# --------------------------------------------------------------------------------------------
# A terminal with Neovim in it


class Terminal:
    """One tmux server on a private socket, one 160x45 window running Neovim."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp = tmp
        self.socket = f"ghostfill-{name}-{os.getpid()}"
        self.conf = tmp / "tmux.conf"
        term = "tmux-256color" if _has_terminfo("tmux-256color") else "xterm-256color"
        # No status bar (the window is all Neovim's); keep the pane after Neovim exits so its
        # last screen can still be read when something went wrong.
        self.conf.write_text(f'set -g default-terminal "{term}"\nset -g status off\n'
                             "set -g remain-on-exit on\nset -g escape-time 0\n")

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", str(self.conf), *args],
                              capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, argv: list[str], env: dict[str, str], unset: list[str], cwd: Path) -> None:
        assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        removed = " ".join(f"-u {k}" for k in unset)
        command = f"cd {shlex.quote(str(cwd))} && exec env {removed} {assigned} " + " ".join(
            shlex.quote(a) for a in argv)
        self.tmux("new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), command)

    def keys(self, *keys: str) -> None:
        """Keys by tmux name (Escape, Enter, Tab, M-Right, C-]) or literal text with `-l`."""
        self.tmux("send-keys", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)

    def screen(self) -> list[Row]:
        return parse_screen(self.tmux("capture-pane", "-p", "-e"))

    def text(self) -> str:
        return "\n".join(r.text.rstrip() for r in self.screen())

    def poll(self, probe: Callable[[list[Row]], T | None], timeout_s: float) -> T | None:
        """Read the screen until `probe` returns something (returned), or None at the end."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = probe(self.screen())
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def wait(self, what: str, probe: Callable[[list[Row]], T | None],
             timeout_s: float = TIMEOUT_S, extra: Callable[[], str] | None = None) -> T:
        """`poll`, failing with the screen when nothing came."""
        found = self.poll(probe, timeout_s)
        if found is None:
            more = extra() if extra else ""
            pytest.fail(f"after {timeout_s:.0f} s still waiting for {what}; screen:\n"
                        f"{self.text()}\n{more}")
        return found

    def close(self) -> None:
        try:
            socket = self.tmux("display-message", "-p", "#{socket_path}").strip()
        except RuntimeError:
            socket = ""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=30, check=False)
        if socket:  # (tmux 3.3 leaves it behind)
            Path(socket).unlink(missing_ok=True)


def _has_terminfo(name: str) -> bool:
    if not shutil.which("infocmp"):
        return False
    return subprocess.run(["infocmp", name], capture_output=True, check=False).returncode == 0


class Nvim:
    """Neovim in a Terminal, with its own config folder holding `init_lua`."""

    def __init__(self, tmp: Path, name: str, init_lua: str, truecolor: bool) -> None:
        nvim, why = find_nvim()
        if nvim is None:
            pytest.skip(f"no Neovim >= 0.10 could be found or installed ({why})")
        self.tmp = tmp
        self.files = tmp / "files"
        self.files.mkdir()
        (tmp / "config" / "nvim").mkdir(parents=True)
        (tmp / "config" / "nvim" / "init.lua").write_text(init_lua)
        self.init_lua = init_lua
        self.term = Terminal(tmp, name)
        env = {
            # `ghostfill serve` as a user who installed it has it: on PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", str(tmp)),
            "XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_STATE_HOME": str(tmp / "state"),
        }
        for passed in ("PYTHONPATH", "XDG_CACHE_HOME", "HF_HOME", "GHOSTFILL_HOME"):
            if passed in os.environ:
                env[passed] = os.environ[passed]
        unset = ["NVIM", "NVIM_LISTEN_ADDRESS", "VIMINIT", "MYVIMRC"]
        if truecolor:
            env["COLORTERM"] = "truecolor"
        else:
            unset.append("COLORTERM")
        self.term.start([nvim], env, unset, self.files)
        try:
            self.term.wait("Neovim to start", lambda rows: True if rows[-1].text.strip() or any(
                r.text.startswith("~") for r in rows) else None, 60)
        except BaseException:
            self.term.close()
            raise

    def lsp_log(self) -> str:
        log = self.tmp / "state" / "nvim" / "lsp.log"
        return "LSP log:\n" + (log.read_text(errors="replace")[-3000:] if log.exists() else "-")

    def command(self, ex: str) -> None:
        """Leave insert mode, then run an Ex command. The pause lets Neovim take <Esc> alone
        (an <Esc> followed at once by ':' would read as <M-:>)."""
        self.term.keys("Escape")
        time.sleep(0.3)
        self.term.type(":" + ex)
        self.term.keys("Enter")

    def edit(self, name: str, text: str) -> Path:
        path = self.files / name
        path.write_text(text)
        self.command(f"edit {name}")
        self.term.wait(f"{name} on screen",
                       lambda rows: True if name in rows[-1].text else None, 30)
        return path

    def write(self, path: Path) -> list[str]:
        """`:w`, then the file's lines (what the buffer holds)."""
        before = path.stat().st_mtime_ns
        self.command("write")
        deadline = time.monotonic() + 30
        while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.stat().st_mtime_ns != before, f":write did not write {path.name}"
        return path.read_text().split("\n")

    def lua(self, expr: str, timeout_s: float = 30) -> str:
        """The value of a Lua expression, written to a file by `:lua`."""
        out = self.tmp / f"lua-{time.monotonic_ns()}.txt"
        self.command(f"lua vim.fn.writefile({{tostring({expr})}}, '{out}')")
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            assert time.monotonic() < deadline, f"no value for {expr}:\n{self.term.text()}"
            time.sleep(0.1)
        return out.read_text().strip()

    def option(self, name: str) -> str:
        """An option's value, read from the screen (`:set name?`)."""
        self.command(f"set {name}?")
        return self.term.wait(f"the value of '{name}'", lambda rows: (
            rows[-1].text.strip() if name in rows[-1].text
            and not rows[-1].text.startswith(":") else None), 10)

    def close(self) -> None:
        try:
            self.command("qall!")
            time.sleep(0.5)
        finally:
            self.term.close()


# --------------------------------------------------------------------------------------------
# What the READMEs tell a user to write


def plugin_setup_lines() -> str:
    """editors/nvim/README.md's setup without a plugin manager, as printed there."""
    readme = (PLUGIN / "README.md").read_text()
    rtp = re.search(r"`(vim\.opt\.rtp:prepend\('/path/to/ghostfill/editors/nvim'\))`", readme)
    setup = re.search(r"`(require\('ghostfill'\)\.setup\{\})`", readme)
    assert rtp and setup, "editors/nvim/README.md no longer has its setup lines"
    return (rtp.group(1).replace("/path/to/ghostfill", str(ROOT)) + "\n" + setup.group(1)
            + "\n")


def native_recipe() -> str:
    """editors/nvim/README.md's recipe for Neovim 0.12's built-in client (no plugin)."""
    readme = (PLUGIN / "README.md").read_text()
    m = re.search(r"## Neovim 0\.12's built-in client.*?```lua\n(.*?)```", readme, flags=re.S)
    assert m, "editors/nvim/README.md no longer has the built-in client's recipe"
    recipe = m.group(1)
    assert "vim.lsp.inline_completion.get()" in recipe, "the recipe names no call that accepts"
    return recipe


# --------------------------------------------------------------------------------------------
# Reading ghost text off the screen


@dataclass
class Ghost:
    """Ghost text seen on `row` (1-based) after the real text `typed`."""

    row: int
    typed: str
    text: str  # first line
    style: Style  # of the ghost cells
    code_style: Style  # of the last typed character
    lines: list[str]  # further lines (virtual lines below), if any
    screen: Row

    def capture(self) -> str:
        return self.screen.marked(self.style).rstrip()


def ghost_after(rows: list[Row], row: int, typed: str) -> Ghost | None:
    """The ghost text drawn after `typed` on screen row `row` (whose buffer line is exactly
    `typed`): the extra characters, if they are not blank and share one style."""
    r = rows[row - 1]
    if not r.text.startswith(typed):
        return None
    text = r.text[len(typed):].rstrip()
    if not text.strip():
        return None
    styles = {st for ch, st in zip(r.text[len(typed):], r.styles[len(typed):], strict=False)
              if not ch.isspace()}
    if len(styles) != 1:
        return None  # (still being drawn, or not one piece of ghost text)
    style = styles.pop()
    lines = []
    for below in rows[row:]:
        cells = [st for ch, st in zip(below.text, below.styles, strict=True) if not ch.isspace()]
        if not cells or any(st != style for st in cells):
            break
        lines.append(below.text.rstrip())
    return Ghost(row, typed, text, style, r.styles[len(typed) - 1], lines, r)


def wait_ghost(nvim: Nvim, row: int, typed: str, timeout_s: float = TIMEOUT_S,
               stable_s: float = 0.0) -> Ghost:
    """Wait for ghost text after `typed`; with `stable_s`, until it stays the same that long."""
    ghost = nvim.term.wait(f"ghost text after {typed!r} on row {row}",
                           lambda rows: ghost_after(rows, row, typed), timeout_s, nvim.lsp_log)
    while stable_s:
        time.sleep(stable_s)
        again = nvim.term.wait(f"ghost text after {typed!r} on row {row}",
                               lambda rows: ghost_after(rows, row, typed), timeout_s,
                               nvim.lsp_log)
        if (again.text, again.lines) == (ghost.text, ghost.lines):
            return again
        ghost = again
    return ghost


def accepted(rows: list[Row], line: str, ghost: Ghost) -> bool | None:
    """Row `ghost.row` starts with `line`, drawn as code (more ghost text may follow it)."""
    r = rows[ghost.row - 1]
    if r.text.startswith(line) and r.styles[len(line) - 1] != ghost.style:
        return True
    return None


def assert_distinct(ghost: Ghost) -> None:
    """Ghost text must not look like code: another colour or attribute than the typed text,
    and one a terminal can show without truecolor (grey, dim or italic)."""
    assert ghost.style != ghost.code_style, (
        f"ghost text looks like the code typed before it ({ghost.style.describe()}): "
        f"{ghost.capture()!r}")
    assert ghost.style.fg is not None or ghost.style.italic or ghost.style.dim, (
        f"ghost text has the default colour and no attribute: {ghost.capture()!r}")


# --------------------------------------------------------------------------------------------
# Sessions


def _need_tmux() -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Any:
    """The plugin with the README's setup line, in a 256-colour terminal (no COLORTERM)."""
    _need_tmux()
    nvim = Nvim(tmp_path_factory.mktemp("plugin"), "plugin", plugin_setup_lines(),
                truecolor=False)
    yield nvim
    nvim.close()


@pytest.fixture(scope="module")
def plugin_truecolor(tmp_path_factory) -> Any:
    """The same, in a terminal that says it has true colour (Neovim turns 'termguicolors' on)."""
    _need_tmux()
    nvim = Nvim(tmp_path_factory.mktemp("truecolor"), "truecolor", plugin_setup_lines(),
                truecolor=True)
    yield nvim
    nvim.close()


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Any:
    """No plugin: the README's recipe for Neovim 0.12's own inline completion."""
    _need_tmux()
    nvim_path, _ = find_nvim()
    if nvim_path is not None and (_version(nvim_path) or (0,))[:2] < (0, 12):
        pytest.skip("this Neovim has no vim.lsp.inline_completion (0.12 or later)")
    nvim = Nvim(tmp_path_factory.mktemp("native"), "native", native_recipe(), truecolor=False)
    yield nvim
    nvim.close()


def type_in_stats(nvim: Nvim, name: str, timeout_s: float = TIMEOUT_S,
                  retype_s: float | None = None) -> tuple[Path, Ghost]:
    """Open a copy of examples/stats.py, type `m` on its last line (stdev's empty body line)
    and wait for the ghost text after it. With `retype_s`: when nothing came in that time,
    type the `m` again, as a user would (for a client that asks only when a key is typed)."""
    path = nvim.edit(name, STATS)
    nvim.term.keys(f"{STATS_ROW}G", "A")
    time.sleep(0.3)
    nvim.term.type("m")
    typed = STATS_LINE + "m"
    if retype_s is not None:
        # Each retype abandons the answer in progress (the server stops on a change), so wait
        # twice as long each time: on a loaded machine one answer may take a while.
        deadline = time.monotonic() + timeout_s
        while nvim.term.poll(lambda rows: ghost_after(rows, STATS_ROW, typed),
                             min(retype_s, max(deadline - time.monotonic(), 0))) is None:
            assert time.monotonic() < deadline, (
                f"no ghost text after {typed!r}\n{nvim.term.text()}\n{nvim.lsp_log()}")
            nvim.term.keys("BSpace")
            time.sleep(0.3)
            nvim.term.type("m")
            retype_s *= 2
    return path, wait_ghost(nvim, STATS_ROW, typed, timeout_s, stable_s=0.5)


def wait_model_ready(nvim: Nvim, timeout_s: float) -> None:
    """Wait until the current buffer's ghostfill server has its model loaded."""
    state = ("(function() local c = vim.lsp.get_clients({ bufnr = 0, name = 'ghostfill' })[1] "
             "if not c or not c.initialized then return 'none' end "
             "local r = c:request_sync('ghostfill/stats', vim.NIL, 5000, 0) "
             "return r and r.result and r.result.state or 'no answer' end)()")
    deadline = time.monotonic() + timeout_s
    while (value := nvim.lua(state)) != "ready":
        assert time.monotonic() < deadline, f"the server is {value!r}\n{nvim.lsp_log()}"
        time.sleep(1)


# --------------------------------------------------------------------------------------------
# The plugin


def test_ghost_text_is_visible_and_distinct_without_termguicolors(plugin: Nvim):
    path, ghost = type_in_stats(plugin, "visible.py", FIRST_TIMEOUT_S)
    print("256 colours:", ghost.capture(), ghost.style.describe(), sep="\n")
    assert plugin.option("termguicolors").startswith("notermguicolors")
    assert_distinct(ghost)
    # A terminal colour, not only a GUI one (which this terminal could not show).
    assert ghost.style.fg is None or ghost.style.fg[0] == "index", ghost.style
    # Ghost text is drawn, not typed: the buffer holds only what was typed.
    assert plugin.write(path)[STATS_ROW - 1] == STATS_LINE + "m"


def test_ghost_text_is_visible_and_distinct_with_termguicolors(plugin_truecolor: Nvim):
    nvim = plugin_truecolor
    _, ghost = type_in_stats(nvim, "visible.py", FIRST_TIMEOUT_S)
    print("true colour:", ghost.capture(), ghost.style.describe(), sep="\n")
    assert nvim.option("termguicolors") == "termguicolors", "COLORTERM=truecolor did not turn " \
        "'termguicolors' on: this case would not test the GUI colour"
    assert_distinct(ghost)
    assert ghost.style.fg is not None and ghost.style.fg[0] == "rgb", ghost.style


def test_tab_accepts_the_suggestion(plugin: Nvim):
    path, ghost = type_in_stats(plugin, "accept.py")
    print(ghost.capture())
    plugin.term.keys("Tab")
    want = [STATS_LINE + "m" + ghost.text, *ghost.lines]
    # On screen: the accepted text is code now (whatever ghost text follows it).
    plugin.term.wait("the accepted text drawn as code", lambda rows: accepted(rows, want[0], ghost))
    lines = plugin.write(path)
    assert lines[STATS_ROW - 1:STATS_ROW - 1 + len(want)] == want, (ghost.capture(), lines)


def test_accept_word_then_accept_line(plugin: Nvim):
    path, ghost = type_in_stats(plugin, "partial.py")
    readme = (PLUGIN / "README.md").read_text()
    assert "accept_word = '<M-Right>'" in readme and "accept_line = '<M-Down>'" in readme
    typed = STATS_LINE + "m"
    word = re.match(r"\s*(\w+|[^\w\s]+)", ghost.text)
    assert word, ghost.text
    plugin.term.keys("M-Right")
    want = typed + ghost.text
    if len(word.group(0)) < len(ghost.text):
        after = plugin.term.wait("the rest of the suggestion after one word", lambda rows: (
            ghost_after(rows, STATS_ROW, typed + word.group(0))))
        print("after accept word:", after.capture(), sep="\n")
        assert after.text == ghost.text[len(word.group(0)):]
        plugin.term.keys("M-Down")
    plugin.term.wait("the whole line accepted", lambda rows: accepted(rows, want, ghost))
    assert plugin.write(path)[STATS_ROW - 1] == want


def test_tab_without_a_suggestion_indents(plugin: Nvim):
    path, ghost = type_in_stats(plugin, "indent.py")
    typed = STATS_LINE + "m"
    # Dismiss: nothing is shown and nothing is asked for until the next edit, so the next
    # <Tab> meets no suggestion.
    plugin.term.keys("C-]")
    plugin.term.wait("the ghost text to go", lambda rows: True if (
        rows[STATS_ROW - 1].text.rstrip() == typed) else None, 10)
    plugin.term.keys("Tab")
    line = plugin.write(path)[STATS_ROW - 1]
    assert line.startswith(typed) and line != typed and not line[len(typed):].strip(), (
        f"<Tab> with no suggestion inserted {line[len(typed):]!r}, not indentation "
        f"(the dismissed ghost text was {ghost.text!r})")


def test_a_budget_cut_line_completes_without_another_keystroke(plugin_truecolor: Nvim):
    """With a 1 ms latency budget (set the documented way: `server_options` in setup(),
    which a second setup() call sends with didChangeConfiguration) the first answer is
    empty or cut on any machine; the ghost text must still come, with no key sent."""
    nvim = plugin_truecolor
    nvim.command("lua require('ghostfill').setup({ server_options = "
                 "{ completion = { latencyBudgetMs = 1 } } })")
    source = ('import math\n\n\ndef circumference(radius):\n'
              '    """Circumference of a circle."""\n    return ')
    row = source.count("\n") + 1
    typed = source.rsplit("\n", 1)[1]
    nvim.edit("late.py", source)
    nvim.term.keys(f"{row}G", "A")  # the last key sent in this test
    seen: list[str] = []

    def grown(rows: list[Row]) -> Ghost | None:
        g = ghost_after(rows, row, typed)
        if g and (not seen or seen[-1] != g.text):
            seen.append(g.text)
        return g

    try:
        ghost = nvim.term.wait("ghost text with no further keystroke", grown, TIMEOUT_S,
                               nvim.lsp_log)
        time.sleep(2)
        grown(nvim.term.screen())
        print("ghost texts seen, in order:", seen, ghost.capture(), sep="\n")
        assert_distinct(ghost)
    finally:
        nvim.command("lua require('ghostfill').setup({})")


# --------------------------------------------------------------------------------------------
# Neovim 0.12's own client


def test_native_client_recipe_shows_and_accepts(native: Nvim):
    nvim = native
    # This client asks only when a key is typed (InsertEnter, cursor moves) and never learns
    # that an answer cut by the latency budget (or by the model's load) was finished: a key
    # typed while the model loads gets nothing until the next one. So: wait for the model,
    # and type `m` again when no ghost text came.
    nvim.edit("native-load.py", STATS)
    wait_model_ready(nvim, FIRST_TIMEOUT_S)
    path, ghost = type_in_stats(nvim, "native.py", FIRST_TIMEOUT_S, retype_s=15)
    print("built-in client:", ghost.capture(), ghost.style.describe(), sep="\n")
    assert_distinct(ghost)  # the recipe's ComplHint line
    # The call the README names, through the key its recipe maps to it.
    assert "'<Tab>'" in native_recipe()
    nvim.term.keys("Tab")
    want = [STATS_LINE + "m" + ghost.text, *ghost.lines]
    nvim.term.wait("the accepted text drawn as code", lambda rows: accepted(rows, want[0], ghost))
    lines = nvim.write(path)
    assert lines[STATS_ROW - 1:STATS_ROW - 1 + len(want)] == want, (ghost.capture(), lines)

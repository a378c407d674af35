"""The short window (issue #17): a keystroke whose full window is not read yet is served from
a window of `context.shortWindowTokens` tokens ending at the cursor, in a cache slot of its
own, while the full window is read in the background.

The helpers with golden cases; the window with the default model's tokenizer; the warm-up
order on document sessions; the decision through the real server over stdio with the real
default model (token counts, never times).
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.errors import ConfigError
from ghostfill.lsp import warmups
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.reading import UNMEASURED_TOKENS, ReadingSpeed, to_read
from ghostfill.lsp.session import DocumentSession
from tests.conftest import SERVE
from tests.lsp_helpers import change, focus, inline, open_doc, stats

#: A real module long enough that its full window is ~2,000 tokens.
LONG = Path(textwrap.__file__).read_text()
LINE = next(i for i, line in enumerate(LONG.splitlines())
            if i > 240 and line.strip().startswith("raise ValueError"))
COLUMN = len(LONG.splitlines()[LINE]) - len(LONG.splitlines()[LINE].lstrip())


def emptied() -> str:
    """The module with the statement line at `LINE` emptied after its indentation."""
    lines = LONG.splitlines(keepends=True)
    lines[LINE] = lines[LINE][:COLUMN] + "\n"
    return "".join(lines)


def offset_of(text: str, line: int, column: int) -> int:
    return sum(len(x) for x in text.splitlines(keepends=True)[:line]) + column


# -- helpers ---------------------------------------------------------------------------------
def test_what_a_slot_must_still_read():
    assert to_read(None, [1, 2, 3]) == 3
    assert to_read([], [1, 2, 3]) == 3
    assert to_read([1, 2, 9, 9], [1, 2, 3]) == 1
    assert to_read([1, 2, 3], [1, 2, 3, 4, 5]) == 2
    # The window start moved down 50 tokens: a head of 10 stays, 200 window tokens follow
    # in both, 5 are new. A backend that shifts keeps the 200; one that does not reads all.
    head, window = list(range(10)), list(range(1000, 1250))
    held = head + window
    prompt = head + window[50:] + [7, 7, 7, 7, 7]
    assert to_read(held, prompt, shift=True) == 5
    assert to_read(held, prompt) == len(prompt) - 10
    short_run = head + window[50:90] + [7] * 100  # 40 tokens in a row: not worth a shift
    assert to_read(held, short_run, shift=True) == len(short_run) - 10


def test_the_reading_speed_is_a_moving_average_of_long_chunks():
    speed = ReadingSpeed()
    assert speed.readable(150) == UNMEASURED_TOKENS  # nothing measured: a few chunks' worth
    speed.note(4, 1000.0)  # a short chunk: fixed costs, not speed
    assert speed.ms_per_token is None
    speed.note(100, 400.0)
    assert speed.ms_per_token == 4.0 and speed.readable(150) == 18  # half the budget reads
    speed.note(100, 100.0)
    assert speed.ms_per_token is not None and 1.0 < speed.ms_per_token < 4.0


def test_the_setting_is_checked():
    assert Config().context.short_window_tokens == 1024
    assert Config().updated({"context": {"shortWindowTokens": 0}}).context.short_window_tokens == 0
    with pytest.raises(ConfigError, match="short_window_tokens"):
        Config().updated({"context": {"shortWindowTokens": 100}})


# -- the window ------------------------------------------------------------------------------
def test_the_short_window_ends_at_the_cursor_within_its_tokens_in_its_own_slot(gemma_backend):
    config = Config().updated({"context": {"shortWindowTokens": 512}})
    engine = CompletionEngine(config, gemma_backend)
    assert engine.short_window == 512
    text = emptied()
    offset = offset_of(text, LINE, COLUMN)
    source = CompletionInput.of_text(text, offset, path="/tmp/tw.py")
    full = engine.prepare(source)
    short = engine.prepare(source, short=True)
    budget = config.completion.max_tokens
    assert len(short.prompt.tokens) + budget <= 512 < len(full.prompt.tokens)
    assert (full.slot, short.slot) == ("/tmp/tw.py", "/tmp/tw.py#short-window")
    assert not full.short and short.short
    # The same cursor, less of the text before it; the lines after it are the same.
    assert short.window.prefix and full.window.prefix.endswith(short.window.prefix)
    assert len(short.window.prefix) < len(full.window.prefix)
    # Each window keeps its own start (each its own cache slot stays valid while typing).
    anchor = source.anchor
    assert anchor.short is not None
    assert (anchor.start, anchor.short.start) == (full.window.prefix_start,
                                                  short.window.prefix_start)
    assert anchor.start is not None and anchor.short.start is not None
    assert anchor.start < anchor.short.start
    typed = text[:offset] + "r" + text[offset:]
    again = engine.prepare(CompletionInput.of_text(typed, offset + 1, path="/tmp/tw.py",
                                                   anchor=anchor.copy()), short=True)
    assert again.window.prefix_start == short.window.prefix_start
    assert again.prompt.tokens[:len(short.prompt.tokens) - 8] == \
        short.prompt.tokens[:len(short.prompt.tokens) - 8]
    # An edit before a start moves it; the copy a request gets is its own.
    copy = anchor.copy()
    copy.edited(anchor.short.start - 1)
    assert copy.short is not None and copy.short.start is None
    assert copy.start == anchor.start and anchor.short.start is not None
    copy.edited(0)
    assert copy.start is None


def test_without_a_shorter_window_there_is_none(gemma_backend):
    off = CompletionEngine(Config().updated({"context": {"shortWindowTokens": 0}}),
                           gemma_backend)
    longer = CompletionEngine(Config().updated({"context": {"shortWindowTokens": 4096}}),
                              gemma_backend)
    assert off.short_window is None and longer.short_window is None
    source = CompletionInput.of_text("x = 1\n", 6, path="/tmp/x.py")
    assert not off.prepare(source, short=True).short  # asked anyway: the full window


# -- the warm-up order -----------------------------------------------------------------------
def session(name: str) -> DocumentSession:
    return DocumentSession(OpenDocument.open(f"file:///tmp/{name}.py", "python", 1, "x = 1\n"))


def test_warm_ups_read_the_front_window_then_the_others_short_then_full():
    a, b, c = session("a"), session("b"), session("c")
    for s in (a, b, c):
        warmups.opened(s)
        s.warm_owed = s.short_owed = True
    warmups.noted(c, 0, active=True)  # the user is in c
    order = []
    while (job := warmups.next_to_warm([a, b, c])) is not None:
        s, short = job
        order.append((s.uri.rsplit("/", 1)[1], short))
        if short:
            s.short_owed = False
        else:
            s.warm_owed = s.short_owed = False
    assert order == [("c.py", False), ("a.py", True), ("b.py", True),
                     ("a.py", False), ("b.py", False)]
    # A warm-up that gave way is owed again as what it was.
    b.warming_short = True
    warmups.gave_way(b)
    assert b.short_owed and not b.warm_owed
    b.warming_short = False
    warmups.gave_way(b)
    assert b.warm_owed


def test_an_older_snapshot_is_not_adopted_after_a_newer_one():
    # A warm-up at the end of the file prepares (its window starts late in the file) while
    # the user's request at the cursor prepares too; the warm-up's prepare ends last. Its
    # anchor must not replace the request's: the next keystroke would keep a window that
    # starts where the end's did, hundreds of tokens shorter than the budget allows (seen
    # with short windows on: a keystroke got a 759-token prompt instead of 1,679).
    s = DocumentSession(OpenDocument.open("file:///tmp/a.py", "python", 1, "x = 1\n" * 400))
    warm, request = s.snapshot(2400), s.snapshot(1200)
    request.anchor.start = 600
    s.adopt(request)
    warm.anchor.start = 1800
    s.adopt(warm)
    assert s.doc.anchor.start == 600
    # In order, each is adopted.
    first, second = s.snapshot(2400), s.snapshot(1200)
    first.anchor.start = 1800
    s.adopt(first)
    assert s.doc.anchor.start == 1800
    second.anchor.start = 300
    s.adopt(second)
    assert s.doc.anchor.start == 300


def test_nothing_known_in_front_short_windows_first():
    a, b = session("a"), session("b")
    for s in (a, b):
        warmups.opened(s)
        s.warm_owed = s.short_owed = True
    assert warmups.next_to_warm([a, b]) == (a, True)


# -- through the server ----------------------------------------------------------------------
async def start(client: LanguageClient, short_window: int) -> None:
    await client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"server": {"debounceMs": 0, "prefetch": False,
                                           "warmOnOpen": False, "engine": "inprocess"},
                                "completion": {"latencyBudgetMs": 60_000},
                                "context": {"shortWindowTokens": short_window}}))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def short_512(lsp_client: LanguageClient):
    await start(lsp_client, 512)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def short_off(lsp_client: LanguageClient):
    await start(lsp_client, 0)
    yield
    await lsp_client.shutdown_session()


async def warmed(client: LanguageClient, done: int, what: str, timeout_s: float = 180) -> Any:
    """The statistics once `done` warm-ups have ended."""
    for _ in range(int(timeout_s / 0.05)):
        s = await stats(client)
        if s.warm_ups.done >= done:
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {s.warm_ups}")


async def keystroke(client: LanguageClient, uri: str, version: int, typed: int) -> Any:
    """Type "#" at the cursor (after `typed` characters typed there; a comment, never the
    start of the suggestion shown, so the model answers) and ask as the editor does while
    typing; the statistics after."""
    if version > 1:
        change(client, uri, version, (LINE, COLUMN + typed), (LINE, COLUMN + typed), "#")
        typed += 1
    await inline(client, uri, LINE, COLUMN + typed, invoked=False)
    return await stats(client)


async def test_a_window_not_read_is_served_short_and_read_whole_behind(short_512: LanguageClient):
    client, uri = short_512, "file:///tmp/gf-short/tw.py"
    open_doc(client, uri, emptied())
    first = await keystroke(client, uri, 1, 0)
    # Nothing was read yet and nothing measured: the full window (~1,900 tokens) does not
    # fit, the short one is read instead, whole, into its own slot.
    assert first.context.short_windows == 1
    assert 300 < first.tokens.evaluated <= 512, first.tokens
    # Its full window is then owed: read once typing pauses.
    s = await warmed(client, 1, "the full window read behind the short one")
    assert s.warm_ups.short == 0, s.warm_ups  # the full window (warm-ups count no tokens)
    # The next keystroke finds its full window read: a few new tokens, the rest reused.
    second = await keystroke(client, uri, 2, 0)
    assert second.context.short_windows == 1
    assert second.tokens.evaluated - s.tokens.evaluated < 20
    assert second.tokens.reused - s.tokens.reused > 1500


async def test_an_invoked_request_waits_for_the_whole_window(short_512: LanguageClient):
    # The user asked and waits: never the short window, however much is left to read.
    client, uri = short_512, "file:///tmp/gf-short/tw.py"
    open_doc(client, uri, emptied())
    await inline(client, uri, LINE, COLUMN, invoked=True)
    s = await stats(client)
    assert s.context.short_windows == 0 and s.tokens.evaluated > 1500, s.tokens


async def test_with_the_short_window_off_the_keystroke_reads_the_whole_window(
        short_off: LanguageClient):
    client, uri = short_off, "file:///tmp/gf-short/tw.py"
    open_doc(client, uri, emptied())
    first = await keystroke(client, uri, 1, 0)
    assert first.context.short_windows == 0 and first.tokens.evaluated > 1500, first.tokens


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def warming(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"server": {"debounceMs": 0, "prefetch": False,
                                           "warmOnOpen": True, "engine": "inprocess"}}))
    yield
    await lsp_client.shutdown_session()


async def test_files_the_user_is_not_in_get_their_short_window_read_first(
        warming: LanguageClient):
    # The user is in a.py; b.py (long) and c.py (short enough for one window) are open too.
    client = warming
    a, b, c = (f"file:///tmp/gf-short/{n}.py" for n in "abc")
    open_doc(client, a, emptied())
    focus(client, a, LINE, COLUMN)
    open_doc(client, b, emptied())
    focus(client, b, LINE, COLUMN, active=False)
    open_doc(client, c, "import os\n\n\ndef main():\n    return os.getcwd()\n")
    await warmed(client, 4, "the four warm-ups")
    # a's full window, b's short one, c whole (its window fits a short one: read once),
    # then b's full window; nothing else.
    await asyncio.sleep(1.0)
    s = await stats(client)
    assert (s.warm_ups.done, s.warm_ups.short) == (4, 1), s.warm_ups
    # Both of b's slots are read: its keystroke reads its full window's new tokens only.
    before = s.tokens
    change(client, b, 2, (LINE, COLUMN), (LINE, COLUMN), "#")
    await inline(client, b, LINE, COLUMN + 1, invoked=False)
    after = await stats(client)
    assert after.context.short_windows == 0
    assert after.tokens.evaluated - before.evaluated < 20, (before, after.tokens)

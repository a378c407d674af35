"""Acceptance feedback (issue #19): Copilot's didShowCompletion / didPartiallyAcceptCompletion
and the accept command, counted per language in `ghostfill/stats` and in the local usage file
that `ghostfill stats` prints; rejection memory over the protocol. Real server process with a
scripted engine (tests/scripted_server.py), real LSP client over stdio.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from lsprotocol.converters import get_converter
from pytest_lsp import ClientServerConfig, LanguageClient

from ghostfill import usage
from tests.lsp_helpers import change, inline, open_doc, stats
from tests.test_server_behaviour import OPTIONS, SCRIPT, SERVE_SCRIPTED, script, start

STATE = Path(tempfile.mkdtemp(prefix="ghostfill-feedback-"))
USAGE = STATE / usage.FILE_NAME
CONFIG = ClientServerConfig(server_command=SERVE_SCRIPTED,
                            server_env={**os.environ, "GHOSTFILL_SCRIPT": str(SCRIPT),
                                        "GHOSTFILL_STATE_DIR": str(STATE)})
URI = "file:///tmp/ghostfill-feedback/stats.py"
SOURCE = "def mean(values):\n    "
ANSWER = "return sum(values) / len(values)"
CONVERTER = get_converter()


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient):
    usage.reset(USAGE)
    await start(lsp_client, OPTIONS)
    yield
    await lsp_client.shutdown_session()


def as_json(item: types.InlineCompletionItem) -> Any:
    return CONVERTER.unstructure(item)


def show(client: LanguageClient, item: types.InlineCompletionItem) -> None:
    client.protocol.notify("textDocument/didShowCompletion", {"item": as_json(item)})


def partially_accept(client: LanguageClient, item: types.InlineCompletionItem,
                     length: int) -> None:
    client.protocol.notify("textDocument/didPartiallyAcceptCompletion",
                           {"item": as_json(item), "acceptedLength": length})


async def accept(client: LanguageClient, item: types.InlineCompletionItem) -> None:
    assert item.command is not None
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=item.command.command, arguments=item.command.arguments))


async def feedback(client: LanguageClient) -> dict[str, Any]:
    """The server's per-language counts (after the notifications sent before it)."""
    result = await stats(client)
    languages = result.feedback.languages
    return {name: getattr(languages, name)._asdict() for name in languages._fields}


async def test_shown_partly_then_fully_accepted_counts_per_language(client: LanguageClient):
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    assert item.insert_text == ANSWER
    show(client, item)
    show(client, item)  # shown again (a redraw): still one suggestion
    change(client, URI, 2, (1, 4), (1, 4), "return ")
    partially_accept(client, item, len("return "))
    counts = (await feedback(client))["python"]
    assert counts == {"shown": 1, "accepted": 0, "partial": 1, "rejected": 0,
                      "chars_shown": len(ANSWER), "chars_kept": len("return ")}
    change(client, URI, 3, (1, 11), (1, 11), ANSWER[len("return "):])
    await accept(client, item)
    counts = (await feedback(client))["python"]
    assert counts["accepted"] == 1 and counts["partial"] == 1
    assert counts["chars_kept"] == counts["chars_shown"] == len(ANSWER)

    # Another language is counted apart; a suggestion shown and not taken keeps nothing.
    script("fn main() {}")
    open_doc(client, "file:///tmp/ghostfill-feedback/lib.rs", "// entry point\n",
             language="rust")
    items = await inline(client, "file:///tmp/ghostfill-feedback/lib.rs", 1, 0)
    assert items
    show(client, items[0])
    counts = await feedback(client)
    assert counts["rust"]["shown"] == 1 and counts["rust"]["chars_kept"] == 0
    assert counts["python"]["shown"] == 1


async def test_the_usage_file_is_private_and_printed_by_the_cli(client: LanguageClient):
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    show(client, item)
    change(client, URI, 2, (1, 4), (1, 4), "return")
    partially_accept(client, item, len("return"))
    await feedback(client)  # the notifications were handled
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        data = usage.read(USAGE)
        if data["languages"].get("python", {}).get("chars_kept") == len("return"):
            break
        time.sleep(0.2)
    assert data["languages"]["python"] == {"shown": 1, "partial": 1,
                                           "chars_shown": len(ANSWER),
                                           "chars_kept": len("return")}
    assert stat.S_IMODE(USAGE.stat().st_mode) == 0o600

    env = {**os.environ, "GHOSTFILL_STATE_DIR": str(STATE)}
    out = subprocess.run([sys.executable, "-m", "ghostfill", "stats"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    python_row = next(line for line in out.splitlines() if line.startswith("python"))
    assert python_row.split()[:5] == ["python", "1", "0", "1", "0"], out
    assert f"{len('return')}/{len(ANSWER)}" in python_row, out
    assert str(USAGE) in out
    raw = subprocess.run([sys.executable, "-m", "ghostfill", "stats", "--json"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(raw)["languages"]["python"]["shown"] == 1
    subprocess.run([sys.executable, "-m", "ghostfill", "stats", "--reset"], env=env,
                   capture_output=True, text=True, timeout=60, check=True)
    assert not USAGE.exists()


async def test_a_rejected_suggestion_is_not_offered_again_at_its_place(client: LanguageClient):
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    show(client, item)
    change(client, URI, 2, (1, 4), (1, 4), "x")  # the user types something else there
    change(client, URI, 3, (1, 4), (1, 5), "")  # and deletes it again
    assert await inline(client, URI, 1, 4) == []
    assert (await feedback(client))["python"]["rejected"] == 1
    # Left out, it is not on screen: typing its first letter does not bring back its rest
    # (the rest of a suggestion the editor never showed).
    change(client, URI, 4, (1, 4), (1, 4), ANSWER[0])
    sources = [i.command.arguments[0] for i in await inline(client, URI, 1, 5) if i.command]
    assert "type_through" not in sources, sources
    change(client, URI, 5, (1, 4), (1, 5), "")

    # Following it (typing its first letter) is no rejection: after a backspace it is back.
    script("pass")
    change(client, URI, 6, (1, 0), (1, 4), "  ")  # another place: two-space indent
    [other] = await inline(client, URI, 1, 2)
    assert other.insert_text == "pass"
    show(client, other)
    change(client, URI, 7, (1, 2), (1, 2), "p")
    change(client, URI, 8, (1, 2), (1, 3), "")
    [again] = await inline(client, URI, 1, 2)
    assert again.insert_text == "pass"
    assert (await feedback(client))["python"]["rejected"] == 1


def test_counts_of_several_servers_add_up(tmp_path: Path):
    """Each server adds what it counted to the file under a lock; none overwrites another."""
    path = tmp_path / "usage.json"
    code = ("import sys; from pathlib import Path; from ghostfill import usage\n"
            "for _ in range(25): usage.add({sys.argv[2]: {'shown': 1, 'chars_shown': 3}}, "
            "Path(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), language])
             for language in ("python", "python", "rust", "python")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    data = usage.read(path)
    assert data["languages"]["python"] == {"shown": 75, "chars_shown": 225}
    assert data["languages"]["rust"] == {"shown": 25, "chars_shown": 75}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_writer_waits_then_writes_once(tmp_path: Path):
    path = tmp_path / "state" / "usage.json"
    writer = usage.UsageWriter(path, flush_s=0.3)
    writer.note("go", shown=1)
    writer.note("go", shown=1, chars_shown=4)
    assert not path.exists()
    time.sleep(1.0)
    assert usage.read(path)["languages"] == {"go": {"shown": 2, "chars_shown": 4}}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_a_client_that_never_reports_shown_counts_what_it_got(client: LanguageClient):
    """VS Code cannot send didShowCompletion (proposed API): there the first item returned
    counts as shown, and the accept command says it was taken."""
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    assert (await feedback(client))["python"]["shown"] == 1
    change(client, URI, 2, (1, 4), (1, 4), ANSWER)
    await accept(client, item)
    counts = (await feedback(client))["python"]
    assert counts["shown"] == 1 and counts["accepted"] == 1
    assert counts["chars_kept"] == counts["chars_shown"] == len(ANSWER)


async def test_the_rest_served_while_typing_through_is_the_same_suggestion(
        client: LanguageClient):
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    show(client, item)
    change(client, URI, 2, (1, 4), (1, 4), "ret")  # typed through its beginning
    [rest] = await inline(client, URI, 1, 7)
    assert rest.insert_text == ANSWER[3:]
    show(client, rest)
    change(client, URI, 3, (1, 7), (1, 7), ANSWER[3:])
    await accept(client, rest)
    counts = (await feedback(client))["python"]
    assert counts["shown"] == 1 and counts["accepted"] == 1
    assert counts["chars_kept"] == counts["chars_shown"] == len(ANSWER)


async def test_malformed_or_unknown_feedback_is_ignored(client: LanguageClient):
    script(ANSWER)
    open_doc(client, URI, SOURCE)
    [item] = await inline(client, URI, 1, 4)
    client.protocol.notify("textDocument/didShowCompletion", {})
    client.protocol.notify("textDocument/didShowCompletion", {"item": {"insertText": "x"}})
    client.protocol.notify("textDocument/didPartiallyAcceptCompletion",
                           {"item": as_json(item), "acceptedLength": "many"})
    client.protocol.notify("textDocument/didPartiallyAcceptCompletion",
                           {"item": {"command": {"arguments": ["gf:nope.1"]}},
                            "acceptedLength": 3})
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="ghostfill.accepted", arguments=[{"odd": 1}, 7]))
    counts = (await feedback(client))["python"]
    assert counts["partial"] == 0 and counts["accepted"] == 0 and counts["chars_kept"] == 0
    assert [i.insert_text for i in await inline(client, URI, 1, 4)] == [ANSWER]


def test_asked_again_at_the_same_place_is_the_same_suggestion():
    """A client asking again where nothing changed (VS Code does, per cursor event) gets the
    same suggestions again: each is counted once, however many alternatives came with it."""
    from ghostfill.lsp.documents import OpenDocument
    from ghostfill.lsp.feedback import Feedback

    doc = OpenDocument.open(URI, "python", 1, SOURCE)
    feedback = Feedback()
    cursor = types.Position(line=1, character=4)
    offset = len(SOURCE)

    def answer() -> list[types.InlineCompletionItem]:
        return [types.InlineCompletionItem(insert_text=text, range=types.Range(start=cursor,
                                                                               end=cursor))
                for text in (ANSWER, "pass")]

    first = feedback.offer(doc, answer(), cursor, lambda p: offset)
    again = feedback.offer(doc, answer(), cursor, lambda p: offset)
    assert [i.command.arguments for i in first] != [i.command.arguments for i in again]
    assert feedback.tally.languages["python"]["shown"] == 1  # the first item counts as shown
    feedback.shown(CONVERTER.unstructure(again[1]))
    feedback.shown(CONVERTER.unstructure(first[1]))
    counts = feedback.tally.languages["python"]
    assert counts["shown"] == 2 and counts["chars_shown"] == len(ANSWER) + len("pass")

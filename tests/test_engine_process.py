"""The engine process with real processes, sockets and signals: sharing, stale sockets,
mismatches, other users, kills mid-stream, hangs, cancels and idle exit.

Every test has its own runtime folder, so each starts its own engines and stops them after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

import ghostfill
from ghostfill.backends import engine_control
from ghostfill.backends.base import CancelToken, GenerationRequest, PromptParts
from ghostfill.backends.engine_client import EngineBackend
from ghostfill.backends.engine_place import EnginePlace, all_places, engine_alive
from ghostfill.backends.engine_wire import PROTOCOL, PromptDeltas
from ghostfill.backends.factory import create_backend
from ghostfill.config import Config
from ghostfill.errors import GhostfillError
from ghostfill.lsp.protocol import plain
from tests.sync_client import SyncClient

PROMPT = "import math\n\n\ndef area(radius):\n    return"
LONG_PROMPT = "# The numbers from one to one hundred, one per line:\n1\n2\n3\n"


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gf-rt-", dir="/tmp"))
    monkeypatch.setenv("GHOSTFILL_RUNTIME_DIR", str(path))
    yield path
    for place in all_places():
        engine_control.stop(place, timeout=5.0)


def config(**server: object) -> Config:
    return Config().updated({"model": {"contextLength": 512}, "server": server})


def request(backend: EngineBackend, text: str, **kw: object) -> GenerationRequest:
    tok = backend.tokenizer
    ids = ([tok.bos_id] if tok.add_bos and tok.bos_id is not None else []) + tok.encode(text)
    return GenerationRequest(PromptParts(tokens=ids, document="/tmp/a.py"),
                             **{"max_tokens": 12, **kw})  # type: ignore[arg-type]


def wait_for(condition, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, message: str) -> None:
        with self.lock:
            self.seen.append((kind, message))

    def kinds(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.seen]


def engine(cfg: Config, events: Events | None = None) -> EngineBackend:
    backend = create_backend(cfg, on_event=events)
    assert isinstance(backend, EngineBackend)
    return backend


def shared_server(runtime: Path) -> SyncClient:
    """`ghostfill serve` over stdio with the shared engine of this test's runtime folder."""
    command = ["env", f"GHOSTFILL_RUNTIME_DIR={runtime}", sys.executable, "-m", "ghostfill",
               "serve"]
    return SyncClient(settings={"server": {"debounceMs": 0}, "model": {"contextLength": 512}},
                      command=command)


def test_a_generation_through_the_engine_is_the_in_process_one(runtime: Path):
    cfg = config()
    backend = engine(cfg)
    local = create_backend(config(engine="inprocess"))
    try:
        pieces: list[str] = []
        remote = backend.generate(request(backend, PROMPT, on_text=pieces.append))
        here = local.generate(request(backend, PROMPT))
        assert remote.text and remote.tokens == here.tokens and remote.text == here.text
        assert "".join(pieces) == remote.text  # streamed as generated
        assert remote.timings.generated_tokens == len(remote.tokens)
        assert backend.options()["engine"] == "shared"
        assert backend.options()["engine_pid"] != os.getpid()
    finally:
        backend.close()
        local.close()


def test_the_socket_and_its_folder_are_the_users_only(runtime: Path):
    backend = engine(config())
    try:
        place = EnginePlace.for_config(config())
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        assert stat.S_IMODE(place.socket.stat().st_mode) == 0o600
        assert stat.S_IMODE(place.log.stat().st_mode) == 0o600
        if os.getuid() != 0:
            return
        # As root, open both up and connect as another user: the engine asks the kernel who
        # connected (SO_PEERCRED) and refuses.
        os.chmod(runtime, 0o755)
        os.chmod(place.socket, 0o666)
        probe = ("import json, socket, os, sys\n"
                 "os.setgid(65534); os.setuid(65534)\n"
                 "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                 "try:\n"
                 "    s.sendall(b'{\"op\": \"status\"}\\n')\n"
                 "    print(repr(s.recv(1000)))\n"
                 "except (ConnectionResetError, BrokenPipeError):\n"
                 "    print('reset')\n")
        out = subprocess.run([sys.executable, "-c", probe, str(place.socket)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() in ("b''", "reset"), out.stdout  # closed without a word
        assert "refused a client of user id 65534" in place.log.read_text()
    finally:
        backend.close()


def test_two_servers_starting_at_once_share_one_engine(runtime: Path):
    servers: list[SyncClient] = []
    threads = [threading.Thread(target=lambda: servers.append(shared_server(runtime)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for i, server in enumerate(servers):
            uri = f"file:///tmp/gf-two/{i}.py"
            server.open(uri, PROMPT)
            result = server.inline(uri, 4, 10, invoked=True)
            assert result is not None and result.items, server.messages
        infos = [engine_control.status(p) for p in all_places()]
        assert len(infos) == 1, infos
        assert len(infos[0]["clients"]) == 2 and infos[0]["state"] == "ready"
    finally:
        for server in servers:
            server.stop()


def test_a_stale_socket_of_a_killed_engine_is_replaced(runtime: Path):
    backend = engine(config())
    place = EnginePlace.for_config(config())
    pid = backend.options()["engine_pid"]
    backend.close()
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not engine_alive(place))
    assert place.socket.exists()  # left behind
    with pytest.raises(OSError):
        socket.socket(socket.AF_UNIX).connect(str(place.socket))
    again = engine(config())
    try:
        assert again.options()["engine_pid"] not in (pid, None)
        assert again.generate(request(again, PROMPT)).text
    finally:
        again.close()


def test_an_engine_of_another_configuration_on_the_socket_is_refused(runtime: Path):
    # Something else listens where this configuration's engine belongs: an engine for other
    # model settings (as after an upgrade, or a hand-started one).
    place = EnginePlace.for_config(config())
    other = json.dumps({"name": "gemma3-270m", "context_length": 256})
    squatter = subprocess.Popen([sys.executable, "-m", "ghostfill", "engine", "run",
                                 "--socket", str(place.socket), "--model-config", other],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: place.socket.exists())
        events = Events()
        backend = engine(config(), events)
        try:
            notices = [m for k, m in events.seen if k == "notice"]
            assert len(notices) == 1 and "configuration" in notices[0], events.seen
            assert "own" in notices[0]
            assert backend.options()["engine"] == "private"
            assert backend.options()["engine_pid"] != squatter.pid
            assert backend.generate(request(backend, PROMPT)).text
        finally:
            backend.close()
    finally:
        squatter.terminate()
        squatter.wait(30)


def long_generation(backend: EngineBackend, cancel: CancelToken, first: threading.Event):
    def on_text(_: str) -> None:
        first.set()

    return request(backend, LONG_PROMPT, max_tokens=400, cancel=cancel, on_text=on_text)


def test_a_cancel_reaches_the_model_in_the_engine(runtime: Path):
    backend = engine(config())
    try:
        cancel, first = CancelToken(), threading.Event()
        result: list = []
        worker = threading.Thread(target=lambda: result.append(
            backend.generate(long_generation(backend, cancel, first))))
        worker.start()
        assert first.wait(60)
        cancel.cancel()
        worker.join(60)
        assert not worker.is_alive()
        generation = result[0]
        # The engine's own answer: its loop saw the cancel and stopped early.
        assert generation.stop_reason == "cancelled", generation
        assert 0 < generation.timings.generated_tokens < 400
    finally:
        backend.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_an_engine_killed_mid_stream_answers_empty_and_comes_back(runtime: Path, sig: int):
    events = Events()
    backend = engine(config(), events)
    try:
        pid = backend.options()["engine_pid"]
        assert isinstance(pid, int)
        cancel, first = CancelToken(), threading.Event()
        result: list = []
        worker = threading.Thread(target=lambda: result.append(
            backend.generate(long_generation(backend, cancel, first))))
        worker.start()
        assert first.wait(60)
        os.kill(pid, sig)
        worker.join(30)
        assert not worker.is_alive(), "a request in flight hung"
        assert result[0].stop_reason == "error" and result[0].text == ""
        assert wait_for(lambda: "restored" in events.kinds(), 120), events.seen
        assert events.kinds().count("lost") == 1, events.seen
        lost = next(m for k, m in events.seen if k == "lost")
        assert f"pid {pid}" in lost and signal.Signals(sig).name in lost, lost
        assert backend.options()["engine_pid"] not in (pid, None)
        assert backend.generate(request(backend, PROMPT)).text
    finally:
        backend.close()


def test_a_hung_engine_is_killed_and_restarted(runtime: Path):
    events = Events()
    backend = engine(config(engine_timeout_s=2.0), events)
    pid = backend.options()["engine_pid"]
    assert isinstance(pid, int)
    try:
        os.kill(pid, signal.SIGSTOP)
        assert wait_for(lambda: "restored" in events.kinds(), 120), events.seen
        assert events.kinds().count("lost") == 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            pytest.fail("the hung engine is still there")
        assert backend.generate(request(backend, PROMPT)).text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        backend.close()


def test_an_engine_without_clients_exits_after_its_idle_time(runtime: Path):
    backend = engine(config(engine_idle_s=1.0))
    place = EnginePlace.for_config(config())
    assert engine_alive(place)
    time.sleep(2.0)
    assert engine_alive(place)  # a client is connected: no idle exit
    backend.close()
    assert wait_for(lambda: not engine_alive(place), 30)
    assert not place.socket.exists()


def test_a_private_engine_ends_with_its_server(runtime: Path):
    backend = engine(config(engine="private"))
    assert backend.options()["engine"] == "private"
    places = all_places()
    assert len(places) == 1 and places[0].name.endswith(f"-p{os.getpid()}")
    backend.close()
    assert wait_for(lambda: not engine_alive(places[0]), 30)


def test_engine_status_and_stop_from_the_command_line(runtime: Path):
    backend = engine(config())
    try:
        run = [sys.executable, "-m", "ghostfill", "engine"]
        out = subprocess.run([*run, "status", "--json"], capture_output=True, text=True,
                             timeout=60)
        infos = json.loads(out.stdout)
        assert len(infos) == 1 and infos[0]["state"] == "ready"
        assert infos[0]["pid"] == backend.options()["engine_pid"]
        assert infos[0]["rss_bytes"] > 0
        out = subprocess.run([*run, "stop", "--all"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and "stopped 1" in out.stdout, out.stderr
        assert not all_places()
    finally:
        backend.close()


def test_a_tcp_engine_needs_its_token(runtime: Path):
    out = subprocess.run([sys.executable, "-m", "ghostfill", "engine", "run", "--listen",
                          "tcp:127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "token" in out.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GF_TOKEN": "sesame"}
    proc = subprocess.Popen([sys.executable, "-m", "ghostfill", "engine", "run", "--listen",
                             f"tcp:127.0.0.1:{port}", "--token-env", "GF_TOKEN",
                             "--model-config", json.dumps({"context_length": 512})], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ask(message: dict) -> dict:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(json.dumps(message).encode() + b"\n")
                return json.loads(s.makefile().readline())

        def listening() -> bool:
            try:
                ask({"op": "status", "token": "sesame"})
                return True
            except OSError:
                return False

        assert wait_for(listening)
        assert ask({"op": "status"})["ok"] is False
        assert ask({"op": "status", "token": "wrong"})["ok"] is False
        assert ask({"op": "status", "token": "sesame"})["pid"] == proc.pid
        # A server configured with the address and the token uses it; without, it is told.
        remote = config(engine_address=f"tcp:127.0.0.1:{port}", engine_token_env="GF_TOKEN")
        os.environ["GF_TOKEN"] = "sesame"
        try:
            backend = engine(remote)
            try:
                assert backend.options()["engine_pid"] == proc.pid
                assert backend.generate(request(backend, PROMPT)).text
            finally:
                backend.close()
            os.environ["GF_TOKEN"] = "guess"
            with pytest.raises(GhostfillError, match="token"):
                engine(remote)
        finally:
            del os.environ["GF_TOKEN"]
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_server_outlives_its_engine_says_so_once_and_serves_again(runtime: Path):
    server = shared_server(runtime)
    try:
        uri = "file:///tmp/gf-outlive/a.py"
        server.open(uri, PROMPT)
        first = server.inline(uri, 4, 10, invoked=True)
        assert first is not None and first.items, server.messages
        stats = plain(server.request("ghostfill/stats", None))
        pid = stats["options"]["engine_pid"]
        os.kill(pid, signal.SIGKILL)

        def restored() -> bool:
            return plain(server.request("ghostfill/stats", None))["engine"]["restored"] == 1

        assert wait_for(restored, 120)
        warnings = [m.message for m in server.messages
                    if m.type == types.MessageType.Warning]
        assert len(warnings) == 1, server.messages
        assert f"pid {pid}" in warnings[0] and "restarting" in warnings[0], warnings
        stats = plain(server.request("ghostfill/stats", None))
        assert stats["options"]["engine_pid"] not in (pid, None)
        assert stats["engine"]["lost"] == 1
        server.change(uri, 2, (4, 10), (4, 10), " ")
        again = server.inline(uri, 4, 11, invoked=True)
        assert again is not None and again.items and again.items[0].insert_text.strip()
        assert server.alive()
    finally:
        server.stop()


def test_bad_messages_get_an_error_and_the_engine_keeps_serving(runtime: Path):
    backend = engine(config())
    place = EnginePlace.for_config(config())
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(place.socket))
            reader = s.makefile()

            def send(message: dict) -> dict:
                s.sendall(json.dumps(message).encode() + b"\n")
                return json.loads(reader.readline())

            hello = send({"op": "hello", "protocol": PROTOCOL, "version": ghostfill.__version__,
                          "key": place.key})
            assert hello["ok"], hello
            while "event" in (answer := json.loads(reader.readline())):
                if answer["event"] == "ready":
                    break
            bad = send({"op": "generate", "id": 7, "request": {"prompt": {}}})
            assert bad["id"] == 7 and "malformed" in bad["error"], bad
            # A delta whose base this connection never sent.
            orphan = send({"op": "warm", "id": 10, "document": "/x.py", "keep": 40,
                           "tokens": [2, 3]})
            assert orphan["id"] == 10 and "malformed" in orphan["error"], orphan
            foreign = send({"op": "generate", "id": 8, "request": {
                "prompt": {"tokens": [2, 3]}, "max_tokens": 2,
                "stopper": {"type": "os:system", "fields": {}}}})
            assert foreign["id"] == 8 and "error" in foreign, foreign
            assert send({"op": "nonsense", "id": 9})["error"]
            s.sendall(b"this is not json\n")
            assert reader.readline() == ""  # that client is dropped
        # ... and every other client is served as before.
        assert backend.generate(request(backend, PROMPT)).text
    finally:
        backend.close()


def test_prompt_deltas_rebuild_every_prompt_on_the_other_end():
    """A keystroke's prompt crosses as what differs from its document's previous one; the
    other end, reading in order, holds the same prompts (`PromptDeltas`)."""
    sender, receiver = PromptDeltas(), PromptDeltas()
    base = list(range(1000, 1100))
    prompts = [("/a.py", base), ("/a.py", [*base, 7]), ("/b.py", base[:50]),
               ("/a.py", [*base[:90], 8, 9]), ("/a.py", [1, 2, 3]), (None, base), (None, base)]
    sizes = []
    for document, tokens in prompts:
        wire = json.loads(json.dumps(sender.encode(document, tokens)))
        sizes.append(len(wire["tokens"]))
        assert receiver.decode(document, wire) == tokens
    assert sizes == [100, 1, 50, 2, 3, 100, 0]
    # Both ends forget the same least recently used documents.
    for i in range(PromptDeltas.DOCUMENTS):
        assert receiver.decode(f"/{i}", sender.encode(f"/{i}", base)) == base
    stale = sender.encode("/a.py", base)
    assert "keep" not in stale  # /a.py was forgotten on this end, and so on the other
    assert receiver.decode("/a.py", stale) == base
    with pytest.raises(ValueError):
        PromptDeltas().decode("/a.py", {"keep": 40, "tokens": [1]})


def test_keystrokes_through_the_engine_cross_as_deltas_and_match_in_process(runtime: Path):
    """Prompts that grow as a user types, through the real engine: each answer is the
    in-process one, and after the first only the new ids crossed."""
    backend = engine(config())
    local = create_backend(config(engine="inprocess"))
    sent: list[dict] = []
    try:
        conn = backend.supervisor.current()
        assert conn is not None
        real_send = conn.channel.send

        def spy(message: dict) -> None:
            if message.get("op") == "generate":
                sent.append(message["request"]["prompt"])
            real_send(message)

        conn.channel.send = spy  # type: ignore[method-assign]
        text = Path(json.__file__).read_text()[:1200] + "\n\ndef dump_all(items):\n    "
        for typed in "total = 0":
            text += typed
            ids = [backend.tokenizer.bos_id, *backend.tokenizer.encode(text)]
            req = GenerationRequest(PromptParts(ids, document="/typed.py"), max_tokens=4)
            here = GenerationRequest(PromptParts(ids, document="/typed.py"), max_tokens=4)
            assert backend.generate(req).tokens == local.generate(here).tokens
        assert "keep" not in sent[0] and all("keep" in p for p in sent[1:])
        assert max(len(p["tokens"]) for p in sent[1:]) <= 4
        assert all("prefix" not in p and "text" not in p for p in sent)  # ids alone
    finally:
        backend.close()
        local.close()


def test_stop_rules_cross_as_ghostfill_dataclasses_only():
    from ghostfill.backends.engine_wire import stopper_from_wire, stopper_to_wire
    from ghostfill.completion.stopping import LineStopper
    from ghostfill.errors import BackendError

    rules = LineStopper(multiline=True, block_indent=4, next_line="    return x",
                        generated="abc")
    again = stopper_from_wire(stopper_to_wire(rules))
    text = "abc\n    y = 1\nz\n"
    assert again == rules and again.check(text) == rules.check(text) is not None

    class Foreign:
        def check(self, text: str) -> int | None:
            return None

        def cut_at_deadline(self, text: str) -> str:
            return text

    with pytest.raises(BackendError):
        stopper_to_wire(Foreign())
    with pytest.raises(ValueError):
        stopper_from_wire({"type": "subprocess:Popen", "fields": {}})


def test_a_crash_while_loading_is_retried_in_the_safe_configuration(
        runtime: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # The engine dies of a real SIGSEGV while its model loads (as llama.cpp's AMX kernel
    # did): the server starts another, which finds the crash marker, loads with extra buffer
    # types off and says what it changed.
    monkeypatch.setenv("GHOSTFILL_STATE_DIR", str(tmp_path))
    markers = tmp_path / "crash-guard"
    killed: list[int] = []

    def kill_while_loading() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            for marker in markers.glob("*.json") if markers.is_dir() else ():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    data = json.loads(marker.read_text())
                    if data["phase"] == "loading the model":
                        os.kill(int(data["pid"]), signal.SIGSEGV)
                        killed.append(int(data["pid"]))
                        return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_while_loading)
    killer.start()
    events = Events()
    backend = engine(config(), events)
    killer.join()
    try:
        assert killed, "the load was never seen"
        assert backend.options()["engine_pid"] != killed[0]
        notices = [m for k, m in events.seen if k == "notice"]
        assert len(notices) == 1, events.seen
        assert f"pid {killed[0]}" in notices[0] and "while loading the model" in notices[0]
        assert "extra buffer types off" in notices[0]
        assert backend.options()["use_extra_bufts"] is False
        assert backend.generate(request(backend, PROMPT)).text
    finally:
        backend.close()


@pytest.mark.parametrize("dies", ["by SIGSEGV", "with status 3"])
def test_an_engine_that_dies_before_it_listens_is_started_again_only_after_a_crash(
        runtime: Path, monkeypatch: pytest.MonkeyPatch, dies: str):
    # A crash can come between the engine's bind and the client's first connect (CI saw it):
    # the client then sees only the process's exit. A signal is a crash the next start may
    # avoid; an exit with a status (a bad configuration) would only say the same again.
    from ghostfill.backends import engine_place
    from ghostfill.backends.engine_place import EngineStartError

    real_spawn = engine_place.spawn
    spawned: list[int] = []
    body = ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)" if dies == "by SIGSEGV"
            else "raise SystemExit(3)")

    def spawn(place: EnginePlace, cfg: Config, **kw: object) -> subprocess.Popen[bytes]:
        if not spawned:
            process = subprocess.Popen([sys.executable, "-c", body])
            spawned.append(process.pid)
            return process
        process = real_spawn(place, cfg, **kw)  # type: ignore[arg-type]
        spawned.append(process.pid)
        return process

    monkeypatch.setattr(engine_place, "spawn", spawn)
    if dies == "with status 3":
        with pytest.raises(EngineStartError, match=r"exited \(3\) before listening") as e:
            engine(config())
        assert not e.value.crashed and len(spawned) == 1
        return
    backend = engine(config())
    try:
        assert len(spawned) == 2 and backend.options()["engine_pid"] == spawned[1]
        assert backend.generate(request(backend, PROMPT)).text
    finally:
        backend.close()


def test_text_with_lone_surrogates_crosses_unchanged():
    # An editor's UTF-16 text may hold half a character; the wire must carry it as it is.
    from ghostfill.backends.engine_wire import Channel

    left, right = socket.socketpair()
    a, b = Channel(left), Channel(right)
    try:
        message = {"text": "x = '\ud800' + '😀'", "tokens": [1, 2]}
        a.send(message)
        assert b.receive() == message
    finally:
        a.close()
        b.close()


def test_the_tokenizer_lives_in_the_engine_and_answers_as_the_vocabulary_does(runtime: Path):
    """Each window counts with the engine's tokenizer (the vocabulary is ~43 MiB of each
    server's memory otherwise); what it answers is the model's own, and a text seen before is
    answered here without asking again."""
    from ghostfill.backends.engine_tokenizer import EngineTokenizer
    from ghostfill.completion.tokenizer import LlamaCppTokenizer
    from ghostfill.models import resolve

    backend = engine(config())
    own = LlamaCppTokenizer.from_gguf(str(resolve(Config().model.name).path))
    place = EnginePlace.for_config(config())
    try:
        tok = backend.tokenizer
        assert isinstance(tok, EngineTokenizer)
        assert (tok.bos_id, tok.eos_ids, tok.add_bos, tok.vocab_size) == \
            (own.bos_id, own.eos_ids, own.add_bos, own.vocab_size)
        texts = [PROMPT, LONG_PROMPT * 40, "naïve = 'ünïcödé' → λ x: x  # 東京\n\t\t",
                 "<start_of_turn> is text here", " ", "\ud800 lone"]
        for text in texts:
            assert tok.encode(text) == own.encode(text), text
        ids = [*own.encode(texts[2]), 0, 1, 2, own.vocab_size - 1]
        assert tok.decode_bytes(ids) == own.decode_bytes(ids)
        for piece in ("<start_of_turn>", "<end_of_turn>", "<fim_prefix>", "not a token"):
            assert tok.special_id(piece) == own.special_id(piece), piece
        asked = engine_control.status(place)["tokenized"]
        for text in texts:  # a keystroke re-counts the same lines: answered here
            assert tok.encode(text) == own.encode(text)
        tok.decode_bytes(ids)
        assert engine_control.status(place)["tokenized"] == asked
        tok.encode(PROMPT + " again")
        assert engine_control.status(place)["tokenized"] == asked + 1
    finally:
        backend.close()


def test_a_server_with_the_shared_engine_loads_no_model_code(runtime: Path):
    """What makes three windows cost one model: neither weights nor vocabulary nor llama.cpp
    itself is mapped into a `ghostfill serve` that uses the shared engine."""
    server = shared_server(runtime)
    try:
        uri = "file:///tmp/gf-light/a.py"
        server.open(uri, PROMPT)
        first = server.inline(uri, 4, 10, invoked=True)
        assert first is not None and first.items, server.messages
        engine_pid = plain(server.request("ghostfill/stats", None))["options"]["engine_pid"]
        maps = Path(f"/proc/{server.server.pid}/maps").read_text()  # env execs python
        assert "libllama" not in maps and ".gguf" not in maps
        assert "libllama" in Path(f"/proc/{engine_pid}/maps").read_text()
    finally:
        server.stop()

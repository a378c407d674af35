"""Protocol fuzzing: any params for any method get a JSON-RPC answer, never a crash or hang."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pygls.exceptions import JsonRpcException

from tests.sync_client import SyncClient

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
URI = "file:///fuzz/protocol.py"
POSITIONS = st.fixed_dictionaries({"line": st.integers(-3, 50) | JSON,
                                   "character": st.integers(-3, 200) | JSON})
# Params shaped like the real ones but with values out of range or of the wrong type.
SHAPED = st.fixed_dictionaries({
    "textDocument": st.fixed_dictionaries({"uri": st.sampled_from([URI, "file:///nope.py"])
                                           | JSON}) | JSON,
    "position": POSITIONS | JSON,
    "context": st.fixed_dictionaries({"triggerKind": st.integers(-1, 3) | JSON}) | JSON,
    "range": st.fixed_dictionaries({"start": POSITIONS, "end": POSITIONS}) | JSON,
})
METHODS = [
    "textDocument/inlineCompletion",
    "textDocument/completion",
    "ghostfill/fim",
    "ghostfill/stats",
    "ghostfill/document",
    "workspace/executeCommand",
]
COUNT = {"requests": 0, "errors": 0}


@pytest.fixture(scope="module")
def server():
    client = SyncClient({"completion": {"maxTokens": 2, "latencyBudgetMs": 200,
                                        "invokedBudgetMs": 500},
                         "server": {"debounceMs": 0, "warmOnOpen": False}})
    client.open(URI, "def f(x):\n    return x\n\n😀 = 1\n")
    yield client
    print(f"\nprotocol fuzzing: {COUNT}")
    client.stop()


@settings(max_examples=150, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(METHODS), params=SHAPED | JSON,
       command=st.sampled_from(["ghostfill.fim", "ghostfill.accepted", "nope"]) | JSON)
def test_any_params_get_an_answer(server: SyncClient, method: str, params, command):
    if method == "workspace/executeCommand":
        params = {"command": command, "arguments": params if isinstance(params, list)
                  else [params]}
    COUNT["requests"] += 1
    try:
        server.raw_request(method, params, timeout=60)
    except JsonRpcException as e:
        COUNT["errors"] += 1
        # Bad input is the client's fault (InvalidParams/InvalidRequest/MethodNotFound or a
        # clear request failure), never an internal error.
        assert e.code in (-32602, -32600, -32601, -32803), (e.code, e.message)
    assert server.alive()


def test_unknown_methods_are_method_not_found(server: SyncClient):
    with pytest.raises(JsonRpcException) as info:
        server.raw_request("ghostfill/unknown", {})
    assert info.value.code == -32601
    assert server.alive()


def test_params_may_be_left_out(server: SyncClient):
    stats = server.call(lambda: _send_without_params(server, "ghostfill/stats"))
    assert stats.state in ("loading", "ready")


async def _send_without_params(server: SyncClient, method: str):
    import asyncio
    import json
    import uuid
    from concurrent.futures import Future

    protocol = server.client.protocol
    msg_id = str(uuid.uuid4())
    future: Future = Future()
    protocol._request_futures[msg_id] = future
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method})
    protocol.writer.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    return await asyncio.wrap_future(future)

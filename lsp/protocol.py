"""JSON-RPC protocol with an answer for every malformed request, and no leftovers per message.

pygls 2.1 raises InvalidParams while decoding a request whose params do not match the LSP
types, but only logs it: the client never gets a response and waits forever. Here such a
request is answered with a proper InvalidParams error carrying its id.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from ghostfill.lsp.messages import REQUESTS

log = logging.getLogger("ghostfill.protocol")

#: The server's edit count when the current request arrived. pygls starts an async handler as
#: a task, after the notifications that came in the same read have been applied; a handler
#: compares this with its document's last edit to know whether its position is still of the
#: current text (`DocumentSession.edited_at`).
ARRIVED_AT: ContextVar[int] = ContextVar("ghostfill_arrived_at", default=0)


@dataclass(frozen=True)
class _Undecodable:
    id: Any
    method: str
    error: JsonRpcException
    jsonrpc: str = "2.0"


class GhostfillProtocol(LanguageServerProtocol):
    @lru_cache  # noqa: B019 (one protocol per process, as pygls's own cache)
    def get_message_type(self, method: str) -> Any:
        """ghostfill's own methods decode into their typed params (lsp/messages.py)."""
        return REQUESTS.get(method) or super().get_message_type(method)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        """The completion-list fallback is offered only to clients without inline
        completion: the others would show each suggestion twice, as ghost text and as a list
        item (the editor plugins used to strip it themselves)."""
        result = yield from super().lsp_initialize(params)
        text_document = params.capabilities.text_document
        if text_document is not None and text_document.inline_completion is not None:
            result.capabilities.completion_provider = None
        return result

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        # Runs in the request's own context, which its handler's task inherits.
        ARRIVED_AT.set(getattr(self._server, "edit_count", 0))
        super()._handle_request(msg_id, method_name, params)

    def structure_message(self, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "method" in data and "jsonrpc" in data:
            # JSON-RPC lets a request leave `params` out; pygls then fails to decode it.
            data.setdefault("params", None)
        try:
            return super().structure_message(data)
        except JsonRpcException as e:
            if isinstance(data, dict) and "id" in data and "method" in data:
                # Whatever failed while decoding, the params did not fit the method's type:
                # the client's mistake (InvalidParams), not the server's (InternalError).
                error = e if e.message and not isinstance(e, JsonRpcInternalError) else \
                    JsonRpcInvalidParams(f"invalid params for {data.get('method')}")
                return _Undecodable(data["id"], str(data["method"]), error)
            raise

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any,
                         args: tuple[Any, ...] | None = None,
                         kwargs: dict[str, Any] | None = None) -> None:
        """Forget each handler's future once it is done.

        pygls 2.1 files the future of every handler that is a coroutine, a thread function
        or a generator under its message id in `_request_futures`, so that `$/cancelRequest`
        can find it; only a request's answer takes it out again. Notifications never are
        answered: each `didChange`/`didOpen`/`didClose` (pygls's built-in handlers for them
        are generators) left a Future, its Condition and lock behind for good, ~0.8 KB per
        keystroke (issue #21), and so did the inner future of an async command. Taken out
        here when done, unless the id already names another request.
        """

        def done(future: Any) -> None:
            if self._request_futures.get(msg_id) is future:
                del self._request_futures[msg_id]
            callback(future)

        super()._execute_handler(msg_id, handler, done, args, kwargs)

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Undecodable):
            log.info("malformed %s request (id %s)", message.method, message.id)
            self._send_response(message.id, None, message.error.to_response_error())
            return
        super().handle_message(message)


def plain(value: Any) -> Any:
    """pygls decodes params and results of custom methods into namedtuples; this turns them
    back into dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value

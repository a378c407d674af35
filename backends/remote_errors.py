"""Remote failures, each as one clear line, and whether it is about the server.

A failure that is about the server rather than the request (refused connection, timeout, bad
key, wrong endpoint, 5xx) is `down`: the backend then backs off (`remote_base.Health`) instead
of raising the same message on every keystroke.
"""

from __future__ import annotations

import json
import os
import ssl

import httpx

from ghostfill.config import RemoteConfig
from ghostfill.errors import BackendError


class RemoteError(BackendError):
    """A remote failure. `down`: it is about the server (enter the back-off), not this request."""

    def __init__(self, message: str, *, down: bool, status: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.down = down
        self.status = status


class StatusError(Exception):
    """An HTTP error status, with the body the server sent (mapped by `map_error`)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.reason, self.body = status, reason, body


def server_message(body: str) -> str:
    """The human part of an error body: OpenAI/vLLM/llama.cpp, TGI and FastAPI shapes."""
    try:
        obj = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, list) and err and isinstance(err[0], dict):  # FastAPI validation
            where = ".".join(str(part) for part in err[0].get("loc", ()))
            err = f"{where}: {err[0].get('msg', '')}" if where else err[0].get("msg", err[0])
        if err is not None:
            return str(err)[:200]
    return body.strip()[:200]


def map_error(exc: BaseException, where: str, path: str, config: RemoteConfig) -> RemoteError:
    """One clear line for anything that went wrong talking to the server."""
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, StatusError):
        return _map_status(exc, where, path, config)
    if isinstance(exc, httpx.ConnectTimeout):
        return RemoteError(
            f"remote server {where} did not accept a connection within "
            f"{config.connect_timeout_s:g}s (remote.connect_timeout_s): is it running?",
            down=True,
        )
    if isinstance(exc, httpx.ConnectError):
        if is_tls_failure(exc):
            return RemoteError(
                f"TLS certificate of {where} is not trusted: install its CA certificate, or set "
                "remote.verify_tls to false on a trusted network",
                down=True,
            )
        reason = "connection refused" if _has_cause(exc, ConnectionRefusedError) else str(exc)
        return RemoteError(
            f"cannot reach remote server {where} ({reason}): is it running?", down=True
        )
    if isinstance(exc, httpx.ReadTimeout):
        return RemoteError(
            f"remote server {where} sent nothing for {config.read_timeout_s:g}s "
            "(remote.read_timeout_s)",
            down=True,
        )
    if isinstance(exc, httpx.TimeoutException):
        return RemoteError(f"remote server {where} timed out ({type(exc).__name__})", down=True)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return RemoteError(
            f"remote server {where} closed the connection mid-answer (did it stop or restart?)",
            down=True,
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return RemoteError(f"remote.endpoint {where} is not a usable URL: {exc}", down=True)
    if isinstance(exc, httpx.HTTPError):
        return RemoteError(f"remote server {where}: {type(exc).__name__}: {exc}", down=True)
    return RemoteError(f"remote backend failed: {type(exc).__name__}: {exc}", down=False)


def _map_status(exc: StatusError, where: str, path: str, config: RemoteConfig) -> RemoteError:
    status, detail = exc.status, server_message(exc.body) or exc.reason
    if status in (401, 403):
        env = config.api_key_env
        if not env or not os.environ.get(env, "").strip():
            hint = f"no API key was sent: set ${env} (remote.api_key_env)" if env else (
                "no API key was sent: set remote.api_key_env"
            )
        else:
            hint = f"the server rejected the key in ${env}"
        return RemoteError(
            f"remote server {where} refused access (HTTP {status}): {hint}",
            down=True,
            status=status,
        )
    if status == 404:
        if "model" in detail.lower():
            return RemoteError(
                f"remote server {where}: model '{config.model}' not found (HTTP 404): check "
                f"remote.model ({detail})",
                down=True,
                status=status,
            )
        return RemoteError(
            f"remote server {where} has no {path} (HTTP 404): check remote.endpoint and "
            "model.backend",
            down=True,
            status=status,
        )
    if status == 501:
        # llama-server: `/infill` on a model without FIM tokens, `/slots` or `/metrics` off.
        hint = (": use a model with FIM tokens, or model.backend openai with model.template"
                if path == "/infill" else "")
        return RemoteError(
            f"remote server {where} does not support {path} (HTTP 501): {detail}{hint}",
            down=True,
            status=status,
        )
    if status == 429 or status >= 500:
        return RemoteError(
            f"remote server {where} failed (HTTP {status}): {detail}", down=True, status=status
        )
    return RemoteError(
        f"remote server {where} refused the request (HTTP {status}): {detail}",
        down=False,
        status=status,
    )


def _has_cause(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_tls_failure(exc: BaseException) -> bool:
    return _has_cause(exc, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)

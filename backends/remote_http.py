"""How a remote backend reaches its server: base URL, headers, the HTTP client.

The API key is read from the environment variable that `RemoteConfig.api_key_env` names, at each
request, and is never logged or put in an error message.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import httpx

from ghostfill.config import RemoteConfig
from ghostfill.errors import ConfigError


def redact(url: str) -> str:
    """The URL without user:password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def base_url(config: RemoteConfig) -> str:
    """`remote.endpoint` without a trailing slash or `/v1`; refuses anything but http(s)."""
    endpoint = config.endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "invalid configuration: remote.endpoint must be an http:// or https:// URL "
            f"(got '{redact(endpoint) or '(empty)'}')"
        )
    # People paste OpenAI-style base URLs ("…/v1"); paths are added per backend.
    return endpoint[: -len("/v1")] if endpoint.endswith("/v1") else endpoint


def request_headers(config: RemoteConfig) -> dict[str, str]:
    """Per-request headers: configured extras, then the bearer key read from the environment."""
    headers = {"Accept": "text/event-stream, application/json"}
    headers.update(dict(config.headers))
    key = os.environ.get(config.api_key_env, "").strip() if config.api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def make_client(config: RemoteConfig) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=config.connect_timeout_s,
        read=config.read_timeout_s,
        write=config.read_timeout_s,
        pool=config.connect_timeout_s,
    )
    return httpx.Client(
        timeout=timeout,
        verify=config.verify_tls,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=4),
    )

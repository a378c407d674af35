"""`ghostfill engine status|stop`: ask the engines in the runtime folder what they are, or to
end, over the same socket and handshake the language servers use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from typing import Any

from ghostfill.backends.engine_place import EnginePlace, connect, engine_alive, engine_pid
from ghostfill.backends.engine_wire import Channel, ChannelClosed


def ask(place: EnginePlace, op: str, timeout: float = 5.0) -> dict[str, Any]:
    """One `status` or `shutdown` exchange; raises OSError/ChannelClosed when nobody answers."""
    sock = connect(place)
    sock.settimeout(timeout)
    channel = Channel(sock)
    try:
        channel.send({"op": op})
        return channel.receive()
    finally:
        channel.close()


def status(place: EnginePlace) -> dict[str, Any]:
    """What the engine says of itself, or what is known of a socket nobody answers on."""
    try:
        return ask(place, "status")
    except (TimeoutError, OSError, ChannelClosed) as e:
        return {"socket": str(place.socket), "state": "stale" if not engine_alive(place)
                else "not answering", "pid": engine_pid(place), "error": str(e)}


def stop(place: EnginePlace, timeout: float = 10.0) -> bool:
    """Ask the engine to exit and wait for it; SIGTERM if it does not. True once it is gone
    (a stale socket is removed)."""
    pid = engine_pid(place)
    with contextlib.suppress(OSError, ChannelClosed, socket.timeout):
        ask(place, "shutdown")
    end = time.monotonic() + timeout
    while engine_alive(place) and time.monotonic() < end:
        time.sleep(0.05)
    if engine_alive(place) and pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while engine_alive(place) and time.monotonic() < end:
            time.sleep(0.05)
    if not engine_alive(place):
        with contextlib.suppress(FileNotFoundError):
            place.socket.unlink()
        return True
    return False


def describe(info: dict[str, Any]) -> str:
    """One line per engine for `ghostfill engine status`."""
    if info.get("state") in ("stale", "not answering"):
        return f"{info['socket']}: {info['state']}" + (f" (pid {info['pid']})"
                                                       if info.get("pid") else "")
    rss = info.get("rss_bytes") or 0
    clients = info.get("clients") or []
    return (f"pid {info.get('pid')}: {info.get('model')} {info.get('state')}, "
            f"{len(clients)} client{'s' if len(clients) != 1 else ''}, "
            f"{rss / 2**20:.0f} MiB, up {info.get('uptime_s')}s, "
            f"{info.get('served')} served{', private' if info.get('private') else ''}; "
            f"{info.get('socket')}")

"""The `ghostfill` command: serve the LSP, complete or show the prompt at a position, list models.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import sys
import time
from pathlib import Path

from ghostfill import __version__
from ghostfill.config import Config
from ghostfill.errors import ConfigError, GhostfillError


def parse_location(location: str) -> tuple[Path, int, int]:
    """`FILE:LINE:COL` (1-based line and column, column in characters) -> (path, line, col)."""
    try:
        path_text, line_text, col_text = location.rsplit(":", 2)
        line, col = int(line_text), int(col_text)
    except ValueError as e:
        raise GhostfillError(f"expected FILE:LINE:COL (1-based), got '{location}'") from e
    if line < 1 or col < 1:
        raise GhostfillError(f"line and column are 1-based, got {line}:{col}")
    path = Path(path_text)
    if not path.is_file():
        raise GhostfillError(f"no such file: {path}")
    return path, line, col


def read_source(path: Path) -> str:
    data = path.read_bytes()
    if len(data) > 32 * 1024 * 1024:
        raise GhostfillError(f"{path} is larger than 32 MiB")
    return data.decode("utf-8", errors="replace")


def offset_of(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    if line > len(lines):
        raise GhostfillError(f"line {line} is past the end of the file ({len(lines)} lines)")
    if col - 1 > len(lines[line - 1]):
        raise GhostfillError(
            f"column {col} is past the end of line {line} ({len(lines[line - 1])} characters)"
        )
    return sum(len(x) + 1 for x in lines[: line - 1]) + col - 1



def build_config(args: argparse.Namespace) -> Config:
    config = Config()
    if getattr(args, "config", None):
        try:
            config = config.updated(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read configuration {args.config}: {e}") from e
    overrides: dict[str, dict[str, object]] = {"model": {}, "completion": {}}
    if getattr(args, "model", None):
        overrides["model"]["name"] = args.model
    if getattr(args, "backend", None):
        overrides["model"]["backend"] = args.backend
    if getattr(args, "template", None):
        overrides["model"]["template"] = args.template
    if getattr(args, "max_tokens", None):
        overrides["completion"]["max_tokens"] = args.max_tokens
    if getattr(args, "budget_ms", None):
        overrides["completion"]["latency_budget_ms"] = args.budget_ms
    if getattr(args, "multiline", None):
        overrides["completion"]["multiline"] = args.multiline
    if getattr(args, "offline", False):
        overrides["model"]["offline"] = True
    remote = {k: v for k in ("endpoint", "tokenizer") if (v := getattr(args, k, None))}
    if remote:
        overrides["remote"] = remote
    config = config.updated(overrides)
    from ghostfill.backends.factory import is_remote

    if remote and not is_remote(config):
        flags = " and ".join(f"--{k}" for k in remote)
        verb = "is" if len(remote) == 1 else "are"
        raise ConfigError(f"{flags} {verb} for a remote backend: add --backend infill "
                          "(llama-server /infill) or --backend openai (/v1/completions)")
    return config


def _engine(config: Config):
    from ghostfill.engine import CompletionEngine

    return CompletionEngine.load(config)


def _definitions(args: argparse.Namespace):
    """Imported definitions come from the folders given with --root, as from an editor's
    workspace folders; without one nothing beyond the file itself is read."""
    from ghostfill.completion.definitions import DefinitionIndex

    return DefinitionIndex(args.root) if getattr(args, "root", None) else None


def cmd_complete(args: argparse.Namespace) -> int:
    from ghostfill.completion.snapshot import CompletionInput, ContextSources

    path, line, col = parse_location(args.location)
    text = read_source(path)
    offset = offset_of(text, line, col)
    engine = _engine(build_config(args))
    # An explicit command waits for its answer: the latency budget is for ghost text, unless
    # --budget-ms asks for it here too.
    budget = args.budget_ms / 1000 if args.budget_ms else math.inf
    result = engine.complete(CompletionInput.of_text(text, offset, path=str(path)),
                             ContextSources(definitions=_definitions(args)),
                             deadline=time.monotonic() + budget)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(result.text + ("\n" if not result.text.endswith("\n") else ""))
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    from ghostfill.completion.snapshot import CompletionInput, ContextSources

    path, line, col = parse_location(args.location)
    text = read_source(path)
    offset = offset_of(text, line, col)
    engine = _engine(build_config(args))
    prepared = engine.prepare(CompletionInput.of_text(text, offset, path=str(path)),
                              ContextSources(definitions=_definitions(args)))
    prompt = prepared.prompt
    info = {
        "model": engine.model_name,
        "template": prompt.template.name,
        "order": prompt.order,
        "context_length": engine.context_length,
        "token_counts": prompt.counts(),
        "window": prepared.window.to_dict(),
        "multiline": prepared.stopper.multiline,
        "grammar": prepared.grammar,
        "prompt": prompt.display(),
    }
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        counts = ", ".join(f"{k}={v}" for k, v in info["token_counts"].items())
        print(f"# model: {info['model']}  template: {info['template']} ({info['order']})  "
              f"window: {engine.context_length} tokens")
        print(f"# tokens: {counts}")
        print(prompt.display())
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ghostfill import models

    if args.download:
        resolved, how = models.download(args.download)
        print(f"{resolved.display_name}: {resolved.path} ({how})")
        return 0
    rows = models.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        mark = "yes" if row["offline"] else "no "
        size = row["size_bytes"]
        ram = row["ram_gb"]
        fim = row["fim"]
        kind = "prefix-only" if fim == "prefix-only" else f"FIM {fim}"
        size_text = models.format_size(size) if isinstance(size, int) else "size ?"
        ram_text = f"RAM ~{ram:.1f} GB" if isinstance(ram, float) else "RAM ?"
        print(f"{row['name']:<20} offline={mark}  {size_text:>8}  {ram_text:<13} {kind}")
        print(f"{'':<20} {row['description']}")
        print(f"{'':<20} {row['state'] if not row['offline'] else row['location']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ghostfill.doctor import doctor, format_report

    report = doctor(build_config(args), probe=not args.no_probe, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    probe = report.get("probe")
    return 0 if report["model"]["available"] and (probe is None or probe["ok"]) else 1


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (a literal loopback address)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def cmd_serve(args: argparse.Namespace) -> int:
    from ghostfill.lsp.server import serve

    config = build_config(args)
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise GhostfillError(f"--token-env {args.token_env}: the variable is not set")
    if args.tcp is not None and token is None and not is_loopback(args.host):
        # The server answers ghostfill/document (open buffers) and reads workspace files.
        raise GhostfillError(
            f"--host {args.host}: refusing to listen off loopback without a token; anyone who "
            "can reach this port could read the code in your open buffers. Add --token-env VAR "
            "(clients send $VAR as initializationOptions.authToken; use TLS or an SSH tunnel "
            "on untrusted networks), or keep the default --host 127.0.0.1"
        )
    if args.tcp is not None and not 0 < args.tcp < 65536:
        raise GhostfillError(f"--tcp {args.tcp}: not a port number")
    serve(config, tcp_port=args.tcp, host=args.host, token=token)
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    """`ghostfill engine run|start|status|stop` (see backends/engine_service.py)."""
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_place import EnginePlace, all_places

    action = args.engine_command
    if action == "run":
        return _engine_run(args)
    if action == "status":
        infos = [engine_control.status(place) for place in all_places()]
        if args.json:
            print(json.dumps(infos, indent=2))
        else:
            print("\n".join(engine_control.describe(i) for i in infos) or "no engine running")
        return 0
    if action == "stop":
        places = all_places() if args.all else [EnginePlace.for_config(build_config(args))]
        failed = [p for p in places if not engine_control.stop(p)]
        for place in failed:
            print(f"ghostfill: could not stop the engine at {place.socket}", file=sys.stderr)
        print(f"stopped {len(places) - len(failed)} engine(s)")
        return 1 if failed else 0
    # start: as a language server would, then leave it running for the others
    from ghostfill.backends.engine_client import EngineSupervisor

    config = build_config(args)
    supervisor = EngineSupervisor(config, private=False)
    info = supervisor.start()
    supervisor.close()
    print(f"engine pid {info.get('pid')}: {info.get('model')} ready on "
          f"{EnginePlace.for_config(config).socket}")
    return 0


def _engine_run(args: argparse.Namespace) -> int:
    import faulthandler
    import logging
    import signal

    from ghostfill.backends.engine_place import EnginePlace
    from ghostfill.backends.engine_service import EngineService

    faulthandler.enable()  # a native crash leaves the Python stack in the engine's log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = Config().updated({"model": json.loads(args.model_config)}) \
        if args.model_config else build_config(args)
    tcp = None
    token = None
    if args.listen:
        host, _, port = args.listen.removeprefix("tcp:").rpartition(":")
        if not port.isdigit():
            raise GhostfillError(f"--listen {args.listen}: expected tcp:HOST:PORT")
        tcp = (host or "127.0.0.1", int(port))
        token = os.environ.get(args.token_env or "")
        if not token:
            raise GhostfillError("--listen: a TCP engine needs a token (--token-env VAR); "
                                 "its clients send $VAR, anyone else is refused")
    socket_path = None if tcp else (Path(args.socket) if args.socket
                                    else EnginePlace.for_config(config).socket)
    service = EngineService(config, socket_path, idle_s=args.idle, private=args.private,
                            tcp=tcp, token=token)
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    return service.serve()


def cmd_stats(args: argparse.Namespace) -> int:
    """The local acceptance statistics (ghostfill/usage.py): read from the file the servers
    write, never from the network."""
    from ghostfill import usage

    path = usage.usage_path()
    if args.reset:
        print(f"deleted {path}" if usage.reset(path) else f"nothing to delete ({path})")
        return 0
    data = usage.read(path)
    if args.json:
        print(json.dumps({**data, "file": str(path)}, indent=2, sort_keys=True))
        return 0
    for line in usage.report(data, path):
        print(line)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghostfill", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ghostfill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="preset, .gguf file, model directory or HF repo id")
        p.add_argument("--backend", choices=["auto", "llamacpp", "transformers", "openai",
                                             "infill"])
        p.add_argument("--template", help="FIM template name (default: detect)")
        p.add_argument("--max-tokens", type=int, dest="max_tokens")
        p.add_argument("--budget-ms", type=int, dest="budget_ms", help="latency budget")
        p.add_argument("--multiline", choices=["auto", "always", "never"])
        p.add_argument("--offline", action="store_true", help="never use the network")
        p.add_argument("--config", help="JSON file with settings (same keys as the LSP options)")
        p.add_argument("--endpoint", metavar="URL",
                       help="remote server for --backend infill/openai (remote.endpoint)")
        p.add_argument("--tokenizer", metavar="GGUF",
                       help="vocabulary GGUF of the served model: exact token counts and "
                            "template detection (remote.tokenizer)")

    p = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    p.add_argument("--tcp", type=int, metavar="PORT", help="listen on TCP instead of stdio")
    p.add_argument("--host", default="127.0.0.1",
                   help="TCP address to bind (default 127.0.0.1; any other needs --token-env)")
    p.add_argument("--token-env", metavar="VAR",
                   help="require TCP clients to send the token in $VAR as "
                        "initializationOptions.authToken")
    model_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("complete", help="print the completion at FILE:LINE:COL")
    p.add_argument("location", metavar="FILE:LINE:COL")
    p.add_argument("--root", action="append", metavar="DIR",
                   help="workspace folder to read imported definitions from (repeatable)")
    p.add_argument("--json", action="store_true", help="text, timings and model as JSON")
    model_options(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("prompt", help="print the prompt that would be sent for FILE:LINE:COL")
    p.add_argument("location", metavar="FILE:LINE:COL")
    p.add_argument("--root", action="append", metavar="DIR",
                   help="workspace folder to read imported definitions from (repeatable)")
    p.add_argument("--json", action="store_true")
    model_options(p)
    p.set_defaults(func=cmd_prompt)

    from ghostfill.bench.cli import add_bench_parser

    add_bench_parser(sub)

    p = sub.add_parser("doctor", help="check this machine: CPU, llama.cpp options, model, and "
                                      "one load + decode in a child process")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-probe", action="store_true", dest="no_probe",
                   help="report only; do not load the model")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds the load + decode may take (default 300)")
    model_options(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("engine", help="the process that runs the model for every editor window")
    engine = p.add_subparsers(dest="engine_command", required=True)
    q = engine.add_parser("status", help="the engines running for this user")
    q.add_argument("--json", action="store_true")
    q = engine.add_parser("stop", help="stop the engine of this model configuration")
    q.add_argument("--all", action="store_true", help="stop every engine of this user")
    model_options(q)
    q = engine.add_parser("start", help="start the shared engine now and wait for its model")
    model_options(q)
    q = engine.add_parser("run", help="run an engine in the foreground (what `start` spawns)")
    q.add_argument("--socket", help="Unix socket path (default: the configuration's own)")
    q.add_argument("--listen", metavar="tcp:HOST:PORT",
                   help="listen on TCP instead (needs --token-env)")
    q.add_argument("--token-env", metavar="VAR", dest="token_env",
                   help="clients must send the token in $VAR")
    q.add_argument("--idle", type=float, default=300.0,
                   help="exit after this many seconds without a client (default 300)")
    q.add_argument("--private", action="store_true",
                   help="exit when the first client leaves")
    q.add_argument("--model-config", dest="model_config",
                   help="model settings as JSON (what a starting client passes)")
    model_options(q)
    p.set_defaults(func=cmd_engine)

    p = sub.add_parser("models", help="list model presets: size, memory, FIM, whether cached")
    p.add_argument("--json", action="store_true")
    p.add_argument("--download", metavar="NAME",
                   help="download a preset or repo id now (into the Hugging Face cache)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("stats", help="suggestions shown, accepted and kept, per language "
                                     "(a local file; nothing is sent anywhere)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--reset", action="store_true", help="delete the statistics file")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "rest"):  # only pass-through benchmarks take their own options
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.rest = extra + args.rest
    try:
        return int(args.func(args) or 0)
    except GhostfillError as e:
        print(f"ghostfill: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ghostfill prompt … | head`
        return 0

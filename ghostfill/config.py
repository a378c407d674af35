"""Typed configuration, validated at the edge.

One dataclass tree serves the CLI, `initializationOptions` and
`workspace/didChangeConfiguration`. Values arrive as untyped JSON, so `Config.updated` checks
every key and type and raises `ConfigError` naming the offending key; callers keep the previous
configuration when that happens.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ghostfill.errors import ConfigError

Backend = Literal["auto", "llamacpp", "transformers", "openai", "infill"]
Multiline = Literal["auto", "always", "never"]
FimOrder = Literal["auto", "psm", "spm"]
Speculative = Literal["auto", "off", "prompt-lookup", "draft"]
Device = Literal["auto", "cpu", "cuda"]
EngineMode = Literal["shared", "private", "inprocess"]
SuffixLayout = Literal["before-prefix", "none"]
SuffixCheck = Literal["invoked", "off"]


@dataclass(frozen=True)
class ModelConfig:
    """Which model runs and how it is loaded."""

    #: Preset name (`ghostfill models`), a local GGUF file, a local HF directory or an HF repo id.
    name: str = "gemma3-270m"
    backend: Backend = "auto"
    #: FIM template name from the registry, or "auto" to detect it from the vocabulary.
    template: str = "auto"
    fim_order: FimOrder = "auto"
    #: Context window in tokens; None takes the preset's (or the model's) own.
    context_length: int | None = None
    #: Draft model for speculative decoding (preset, path or repo id).
    draft: str | None = None
    speculative: Speculative = "auto"
    device: Device = "auto"
    threads: int | None = None
    #: Reuse the KV cache between requests (off only to measure what reuse is worth).
    kv_reuse: bool = True
    #: When the window start moves, shift the cached keys/values instead of re-reading the
    #: window (llama.cpp backend; an approximation, like llama-server's context shift).
    kv_shift: bool = True
    #: llama.cpp's extra buffer types (repacked weights; the AMX kernel on Intel Xeons).
    #: None ("auto"): off where the CPU has AMX, whose kernel crashes (llama.cpp #20824).
    extra_buffer_types: bool | None = None
    #: Run code shipped with a model repository. Off unless the user opts in.
    trust_remote_code: bool = False
    #: Never touch the network, even for models that are not cached yet.
    offline: bool = False
    #: Memory for the keys/values of the documents kept warm (one cache slot per recently
    #: used document, so returning to a file does not re-read its window); None sizes it from
    #: the model's bytes per token and the machine's memory.
    kv_cache_mb: int | None = None


@dataclass(frozen=True)
class ContextConfig:
    """How the prompt window is assembled."""

    #: Share of the window budget given to the prefix (the rest goes to the suffix).
    prefix_share: float = 0.75
    #: Cap on suffix tokens; a short suffix keeps the KV cache reusable between keystrokes.
    max_suffix_tokens: int = 256
    #: Cap in PSM order (families not trained in SPM, e.g. DeepSeek-Coder), where the suffix
    #: follows the typed text and is re-evaluated on every keystroke.
    psm_suffix_tokens: int = 64
    #: Cross-file context at all: chunks of other open buffers and imported definitions.
    cross_file: bool = True
    #: Token cap for all cross-file context together.
    cross_file_tokens: int = 256
    #: Definitions of the names the buffer imports, read from the workspace roots (Python,
    #: JavaScript/TypeScript relative imports); off without a workspace root.
    import_definitions: bool = True
    #: The user's recent edits in the workspace folder (not the one at the cursor): where and
    #: what changed, within `cross_file_tokens` (`completion/edits.py`). Off by default: on
    #: the commit replay (`ghostfill bench edits`, docs/benchmarks.md) it did not help the
    #: default model.
    recent_edits: bool = False
    #: Time a request may spend reparsing the buffer. An edit that breaks the syntax far
    #: around it can cost 10-20 ms to reparse in a 10,000-line file; past the budget the
    #: request uses the edited tree (positions right, structure of the edited lines old) and
    #: the parse is finished when the buffer goes idle.
    parse_budget_ms: float = 2.5
    #: Cap on the suffix block of a prefix-only prompt (`completion.suffix_layout`); it gets
    #: at most 1 - `prefix_share` of the window budget.
    suffix_block_tokens: int = 512
    #: Lines of the suffix block at most (the next lines after the cursor); 0: no cap.
    suffix_block_lines: int = 0
    #: While a document's window is not read yet (a file just opened or switched to, a jump
    #: far away) and reading it would not fit the typing budget, suggestions come from a
    #: window of this many tokens ending at the cursor, read in its own cache slot in a
    #: fraction of the time, and the full window is read in the background meanwhile. On 2
    #: CPU cores a 2,048-token window takes ~6.5 s to read (docs/benchmarks.md, file
    #: switches). 0: off (typing waits for the full window).
    short_window_tokens: int = 1024


@dataclass(frozen=True)
class CompletionConfig:
    """What a completion may be."""

    max_tokens: int = 64
    #: Keystroke to suggestion budget. At the deadline the backend stops at a clean boundary:
    #: whole lines of a block, or a line up to its last whole word, whose rest is then
    #: generated in the background and shown from the next keystroke on.
    latency_budget_ms: int = 150
    #: Budget when the user asked explicitly (invoked trigger, FIM command): they wait for it.
    invoked_budget_ms: int = 30000
    multiline: Multiline = "auto"
    #: Further tries when the filters reject an answer, each with the rejected first tokens
    #: banned (within the latency budget; token-prompt backends only).
    alternatives: int = 2
    #: Suggestions an invoked request returns (the editor cycles among them: VS Code's
    #: Alt+], the Neovim plugin's <M-]>): the greedy one first, then the model's next choices
    #: of first token, each past the filters and distinct, within the invoked budget.
    #: Automatic requests stay one suggestion: a second one would cost as much as the first.
    choices: int = 3
    temperature: float = 0.0
    #: Where a model without FIM tokens (template "prefix-only") sees the code after the
    #: cursor: "before-prefix" puts it before the prefix as a block of its own, under the
    #: comment `<path> (after the cursor)` (like a snippet of another file; it stays the same
    #: while the user types, so the KV cache holds); "none" shows the prefix alone. The
    #: filters see the suffix either way. FIM templates place the suffix as trained.
    suffix_layout: SuffixLayout = "none"
    #: A prefix-only model's answer at the start of a line is checked against the code below
    #: (`completion/suffix_check.py`): when those lines use a name nothing above defines and
    #: the answer does not bind it, lines that start by binding it are generated too (an
    #: assignment, a loop, both names at once, a module's import, a helper's `def`), and the
    #: candidate that makes the next lines most probable wins. "invoked": for requests the
    #: user asked for (they cost a few generations more); "off": never.
    suffix_check: SuffixCheck = "invoked"
    #: Block answers an invoked multi-line request weighs for a prefix-only model (with
    #: `suffix_check` "invoked"): the model's first choice and its next choices of first word,
    #: shown in the order of how probable each makes the code below (answer and next lines
    #: scored in the file's order). The model's first block is often not the one the code
    #: below continues; 1: the model's order. At least `choices` are generated.
    block_candidates: int = 5
    #: Language ids for which completion is off (e.g. ["markdown", "plaintext"]).
    disabled_languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerConfig:
    """Behaviour of the language server itself."""

    debounce_ms: int = 40
    cache_size: int = 256
    prefetch: bool = True
    warm_on_open: bool = True
    #: Where the model runs. "shared": one engine process per user and model configuration,
    #: shared by every editor window and `ghostfill complete`, started on demand and
    #: supervised; "private": an engine process for this server alone; "inprocess": the model
    #: in the server's own process (debugging, tests: a native crash takes the server down).
    engine: EngineMode = "shared"
    #: A shared engine with no client left exits after this many seconds.
    engine_idle_s: float = 300.0
    #: An engine silent this long (it answers pings even while generating) is hung: it is
    #: killed and restarted.
    engine_timeout_s: float = 10.0
    #: "tcp:HOST:PORT" of an engine started by hand (`ghostfill engine run --listen`), used
    #: instead of finding or starting one here; it needs the token in `engine_token_env`.
    engine_address: str = ""
    #: Environment variable holding the TCP engine's token (the token is never stored).
    engine_token_env: str = "GHOSTFILL_ENGINE_TOKEN"


@dataclass(frozen=True)
class RemoteConfig:
    """Where a remote backend sends generation (only used by the `openai`/`infill` backends)."""

    endpoint: str = ""
    model: str = ""
    #: Name of the environment variable that holds the API key; the key itself is never stored.
    api_key_env: str = "GHOSTFILL_API_KEY"
    headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    #: A vocabulary-only GGUF of the served model: exact token counts and template detection.
    tokenizer: str | None = None
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    completion: CompletionConfig = field(default_factory=CompletionConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)

    def updated(self, values: Any) -> Config:
        """Return a copy with `values` (a nested dict, camelCase or snake_case keys) applied."""
        if values is None:
            return self
        new = _apply(self, values, "")
        new.validate()
        return new

    def validate(self) -> None:
        checks = [
            (0.0 < self.context.prefix_share <= 1.0, "context.prefix_share must be in (0, 1]"),
            (self.context.max_suffix_tokens >= 0, "context.max_suffix_tokens must be >= 0"),
            (self.context.psm_suffix_tokens >= 0, "context.psm_suffix_tokens must be >= 0"),
            (self.context.cross_file_tokens >= 0, "context.cross_file_tokens must be >= 0"),
            (self.context.parse_budget_ms > 0, "context.parse_budget_ms must be > 0"),
            (self.context.suffix_block_tokens >= 0, "context.suffix_block_tokens must be >= 0"),
            (self.context.suffix_block_lines >= 0, "context.suffix_block_lines must be >= 0"),
            (self.context.short_window_tokens == 0 or self.context.short_window_tokens >= 256,
             "context.short_window_tokens must be 0 (off) or >= 256"),
            (1 <= self.completion.max_tokens <= 4096, "completion.max_tokens must be 1..4096"),
            (self.completion.latency_budget_ms > 0, "completion.latency_budget_ms must be > 0"),
            (self.completion.invoked_budget_ms > 0, "completion.invoked_budget_ms must be > 0"),
            (self.completion.temperature >= 0, "completion.temperature must be >= 0"),
            (0 <= self.completion.alternatives <= 8, "completion.alternatives must be 0..8"),
            (1 <= self.completion.choices <= 8, "completion.choices must be 1..8"),
            (1 <= self.completion.block_candidates <= 8,
             "completion.block_candidates must be 1..8"),
            (self.server.debounce_ms >= 0, "server.debounce_ms must be >= 0"),
            (self.server.cache_size >= 0, "server.cache_size must be >= 0"),
            (self.server.engine_idle_s >= 0, "server.engine_idle_s must be >= 0"),
            (self.server.engine_timeout_s > 0, "server.engine_timeout_s must be > 0"),
            (self.model.kv_cache_mb is None or self.model.kv_cache_mb >= 1,
             "model.kv_cache_mb must be >= 1"),
            (
                self.model.context_length is None or self.model.context_length >= 64,
                "model.context_length must be >= 64",
            ),
            (self.model.threads is None or self.model.threads >= 1, "model.threads must be >= 1"),
            (bool(self.model.name.strip()), "model.name must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid configuration: {message}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _apply(obj: Any, values: Any, path: str) -> Any:
    if not isinstance(values, dict):
        where = path.rstrip(".") or "options"
        raise ConfigError(f"invalid configuration: {where} must be an object")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = _snake(str(raw_key))
        where = f"{path}{key}"
        if key not in names:
            raise ConfigError(f"invalid configuration: unknown key '{where}'")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _apply(current, value, where + ".")
        else:
            changes[key] = _coerce(value, hints[key], where)
    return dataclasses.replace(obj, **changes)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"invalid configuration: {where}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"invalid configuration: {where} must be one of {allowed}")
        return value
    if origin is tuple:
        if isinstance(value, dict) and args and typing.get_origin(args[0]) is tuple:
            value = list(value.items())
        if not isinstance(value, list | tuple):
            raise ConfigError(f"invalid configuration: {where} must be a list")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"invalid configuration: {where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"invalid configuration: {where} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"invalid configuration: {where} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"invalid configuration: {where} must be a string")
        return value
    raise ConfigError(f"invalid configuration: {where} has an unsupported type")

"""Build the backend a configuration asks for."""

from __future__ import annotations

from collections.abc import Callable

from ghostfill.backends.base import Backend
from ghostfill.config import Config
from ghostfill.errors import ConfigError, ModelNotAvailable
from ghostfill.models import ResolvedModel, resolve

#: Backends that send generation to a server elsewhere: no model, and no native model code, in
#: this process.
REMOTE_BACKENDS = frozenset({"openai", "infill"})


def is_remote(config: Config) -> bool:
    """Whether the configured backend is a remote one (`REMOTE_BACKENDS`)."""
    return config.model.backend in REMOTE_BACKENDS


def backend_kind(config: Config, model: ResolvedModel | None) -> str:
    kind = config.model.backend
    if kind != "auto":
        return kind
    if model is not None and model.kind == "gguf":
        return "llamacpp"
    return "transformers"


def create_backend(config: Config,
                   on_progress: Callable[[float], None] | None = None,
                   on_event: Callable[[str, str], None] | None = None) -> Backend:
    """`on_progress` is told how far a local model's download, then its load, is (0..1),
    where the backend can say; `on_event` hears what the user should know of an engine process
    (kind, message: see `engine_client`)."""
    mc = config.model
    if is_remote(config):
        return _remote_backend(config)
    # A hub GGUF preset that is not cached yet is downloaded here (network allowed), reporting
    # through the same progress as the load that follows.
    model = resolve(mc.name, offline=mc.offline, on_download=on_progress)
    if config.server.engine != "inprocess":
        from ghostfill.backends.engine_client import EngineBackend

        # The weights and the vocabulary go to the engine; budgets are still counted here,
        # with the engine's tokenizer (`engine_tokenizer`, its answers cached here).
        return EngineBackend(config, private=config.server.engine == "private",
                             on_progress=on_progress, on_event=on_event)
    kind = backend_kind(config, model)
    context_length = mc.context_length or (model.preset.context_length if model.preset else None)
    if kind == "llamacpp":
        if model.kind != "gguf":
            raise ConfigError(f"the llamacpp backend needs a .gguf model, got {model.path}")
        from ghostfill.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            model.path,
            context_length=context_length,
            threads=mc.threads,
            model_name=model.display_name,
            draft_tokens=8 if mc.speculative == "prompt-lookup" else 0,
            kv_reuse=mc.kv_reuse,
            kv_shift=mc.kv_shift,
            extra_buffer_types=mc.extra_buffer_types,
            on_progress=on_progress,
            kv_cache_bytes=mc.kv_cache_mb * 2**20 if mc.kv_cache_mb else None,
        )
    if kind == "transformers":
        if model.kind != "hf":
            raise ConfigError(
                f"the transformers backend needs a model directory or repo id, got {model.path}"
            )
        from ghostfill.backends.transformers_backend import TransformersBackend

        draft = mc.draft or (model.preset.draft if model.preset else None)
        draft_path = None
        if draft and mc.speculative in ("auto", "draft"):
            try:
                draft_path = resolve(draft, offline=mc.offline).path
            except ModelNotAvailable:
                if mc.speculative == "draft":
                    raise
                # "auto": no draft model at hand, the backend falls back to prompt lookup.
        if mc.threads:
            import torch

            torch.set_num_threads(mc.threads)
        return TransformersBackend(
            model.path,
            draft=draft_path,
            device=mc.device,
            context_length=context_length,
            speculative=mc.speculative,
            trust_remote_code=mc.trust_remote_code,
            model_name=model.display_name,
            kv_cache_bytes=mc.kv_cache_mb * 2**20 if mc.kv_cache_mb else None,
        )
    raise ConfigError(f"unknown backend '{kind}'")


def _remote_backend(config: Config) -> Backend:
    """A serving engine elsewhere: ghostfill keeps context, templates and filters locally."""
    from ghostfill.completion.tokenizer import RemoteTokenizer
    from ghostfill.fim import get_template

    mc, rc = config.model, config.remote
    if not rc.endpoint:
        raise ConfigError("remote.endpoint must be set for the openai and infill backends")
    if rc.tokenizer:
        tokenizer = RemoteTokenizer.from_gguf(rc.tokenizer)
        stops: tuple[str, ...] = ()
    else:
        if mc.template == "auto":
            raise ConfigError(
                "a remote backend needs model.template (or remote.tokenizer, a vocabulary GGUF "
                "to detect it from): without the model's vocabulary ghostfill cannot tell"
            )
        template = get_template(mc.template)
        tokenizer = RemoteTokenizer(specials=template.control_tokens)
        stops = template.control_tokens
    if mc.backend == "infill":
        from ghostfill.backends.remote_infill import InfillBackend

        return InfillBackend(rc, tokenizer=tokenizer, context_length=mc.context_length)
    from ghostfill.backends.remote_openai import OpenAICompletionsBackend

    return OpenAICompletionsBackend(rc, tokenizer=tokenizer, context_length=mc.context_length,
                                    stop=stops)

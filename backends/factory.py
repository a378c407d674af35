"""Build the backend a configuration asks for."""

from __future__ import annotations

from ghostfill.backends.base import Backend
from ghostfill.config import Config
from ghostfill.errors import ConfigError
from ghostfill.models import ResolvedModel, resolve


def backend_kind(config: Config, model: ResolvedModel | None) -> str:
    kind = config.model.backend
    if kind != "auto":
        return kind
    if model is not None and model.kind == "gguf":
        return "llamacpp"
    return "transformers"


def create_backend(config: Config) -> Backend:
    mc = config.model
    if mc.backend in ("openai", "infill"):
        raise ConfigError(
            f"backend '{mc.backend}' needs the remote backend module, which is not installed"
        )
    model = resolve(mc.name, offline=mc.offline)
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
        )
    raise ConfigError(f"backend '{kind}' is not available in this build")

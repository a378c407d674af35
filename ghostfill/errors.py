"""Errors a user can act on.

Every error that reaches a person (CLI, `window/showMessage`, an LSP error response) is a
`GhostfillError`: its message is one line that names the thing and says what to do. Anything
else that escapes is a bug and is reported as such.
"""

from __future__ import annotations


class GhostfillError(Exception):
    """Base class: the message is shown to the user as is."""


class ConfigError(GhostfillError):
    """A configuration value is invalid; the previous configuration stays in force."""


class ModelNotAvailable(GhostfillError):
    """The model is neither on disk nor downloadable right now."""


class ModelLoadError(GhostfillError):
    """The model file exists but cannot be loaded (truncated, corrupt, wrong architecture)."""


class TemplateError(GhostfillError):
    """The FIM template does not fit the model's vocabulary."""


class BackendError(GhostfillError):
    """The backend failed while generating."""


class BackendUnavailable(BackendError):
    """No model to ask right now (the engine process is being restarted): the request answers
    nothing, without a message of its own, since the incident itself was told to the user."""


class InvalidPosition(GhostfillError):
    """A cursor position lies outside the document."""

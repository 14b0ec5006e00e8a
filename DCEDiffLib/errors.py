"""Exceptions with messages a user can act on: each names the input and what was expected."""


class DCEDiffError(Exception):
    """Base class of every error DCEDiff raises on purpose."""


class InputError(DCEDiffError, ValueError):
    """An input file, volume or option is unusable; the message names it and what was expected."""


class ModelFileError(DCEDiffError):
    """A model file or model card is missing, corrupt, foreign or tampered with."""


class CancelledError(DCEDiffError):
    """The user (or a cancel hook) stopped a running job; nothing was written."""


class MissingExtraError(DCEDiffError):
    """A command or option needs a package of an optional pip extra that is not installed; the message names the
    packages and the extra."""

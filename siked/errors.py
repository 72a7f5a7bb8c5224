"""User-facing errors: the CLI prints these as one clear line instead of a traceback."""


class SikedError(Exception):
    """Base class for errors caused by user input or environment (bad config, missing file)."""

    #: the CLI's exit status for this error
    exit_code: int = 2


class DataError(SikedError):
    """A data file is missing, has the wrong checksum, or cannot be parsed."""


class ModelError(SikedError):
    """A model cannot be found or loaded."""


class UnknownNameError(SikedError, KeyError):
    """A name that is not registered (a strategy, a prompt style): the message names the
    choices. A ``KeyError`` too, for callers that look names up like keys."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])

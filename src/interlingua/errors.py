"""User-facing errors.

Every failure a user can cause (a wrong name, a missing package, bad text, a full disk)
is raised as an :class:`InterlinguaError` whose message says what went wrong *and what to
do*. The CLI prints these messages without a traceback; anything else is a bug.
"""


class InterlinguaError(Exception):
    """An error caused by the user's input or environment, with a message saying what to do."""


class UnknownModelError(InterlinguaError, KeyError):
    """A model name that is neither bundled, nor a local path, nor reachable on a hub."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownHookError(InterlinguaError, KeyError):
    """A hook point name the model does not have."""

    def __str__(self) -> str:
        return str(self.args[0])

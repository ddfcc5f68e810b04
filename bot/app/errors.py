"""The one error of composition: the runtime cannot be built as configured."""


class SetupError(RuntimeError):
    """The runtime cannot be built as configured; the message says what to change."""

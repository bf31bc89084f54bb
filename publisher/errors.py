"""The one exception hierarchy of publisher.

Library code raises these; only the CLI (and the daemon's job wrapper) turns them into an
`Error: …` line and an exit code. Every class carries an optional hint for the operator, and
callers chain the cause with `raise … from exc` so it is never lost.
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base of every error publisher reports to a person."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and hint as one line, never a traceback."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class ConfigError(PublisherError):
    """The configuration file or the environment is wrong."""

    exit_code = 2


class SourceError(PublisherError):
    """The seeds folder is missing or cannot be read, or a build would unpublish too much at once."""


class StateError(PublisherError):
    """The state database cannot be opened, is too new, or is damaged."""


class LockedError(StateError):
    """Another publisher process holds the lock on this state folder."""

    exit_code = 3


class OutputError(PublisherError):
    """An output file could not be written."""


class DeliveryError(PublisherError):
    """A digest could not be rendered or delivered."""


class SubscriberError(PublisherError):
    """A subscriber address or a subscriber file is not acceptable."""

"""User-facing errors.

Every problem a user can fix (a bad config, an unknown model, an architecture from another
search space, a corrupt checkpoint) raises :class:`NetAdaptError` with a one-line message that
names the problem.  The CLI prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations

__all__ = ["NetAdaptError"]


class NetAdaptError(ValueError):
    """A problem with the user's input, described in one line."""

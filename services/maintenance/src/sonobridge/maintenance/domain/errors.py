"""Errors the maintenance rules raise; transports map them to HTTP and gRPC statuses."""

from __future__ import annotations

from sonobridge.common.problems import Conflict, InvalidInput


class InvalidTransition(Conflict):
    """The ticket's state does not allow the requested step."""


class DeviceUnavailable(Conflict):
    """The device is not in a status that allows the requested change."""


class InvalidRequest(InvalidInput):
    """A command is malformed or contradicts a rule."""

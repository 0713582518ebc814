"""The application's exception tree for refused use cases.

ServiceError          a use case was refused; the message is one line fit for an operator
├── NotFound          the named account, story or actor does not exist
├── Conflict          the name or thing already exists
├── Invalid           the input is not acceptable (bad role, empty title, ...)
└── Forbidden         the account may not do this
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refused use case; str(error) is one clear line."""


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Invalid(ServiceError):
    pass


class Forbidden(ServiceError):
    pass

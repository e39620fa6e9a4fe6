"""convkey: one WhatsApp conversation per person, kept in PostgreSQL."""

__version__ = "0.1.0"

from .client import Client  # noqa: E402
from .errors import (  # noqa: E402
    Conflict,
    ConvkeyError,
    InvalidIdentifier,
    InvalidState,
    NotFound,
    ValueTooLong,
)

__all__ = ["Client", "Conflict", "ConvkeyError", "InvalidIdentifier", "InvalidState", "NotFound", "ValueTooLong"]

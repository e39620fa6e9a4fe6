"""convkey: one WhatsApp conversation per person, kept in PostgreSQL."""

__version__ = "0.1.0"

"""The reliability report: ``python -m reliability.report`` turns the figures the reliability tests
record (``CONVKEY_RELIABILITY_DIR``) into RELIABILITY.md. ``make reliability`` runs both."""

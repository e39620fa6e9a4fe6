"""The subscriber rules: one table that both the runner and the SQL package apply.

Some countries let one subscriber be written two ways. The rules below rewrite the digits of an
E.164 number (without the ``+``) to one spelling, so the same person gets the same key whichever
spelling reached us:

- Mexico: mobiles used to carry a ``1`` after the country code (``+52 1 55 1234 5678``); it was
  dropped in 2019, so ``+521`` + 10 digits is ``+52`` + the same 10 digits.
- Brazil: mobiles got a ninth digit, a ``9`` in front of the old 8 digits (``+55 66 9667-9626`` is
  ``+55 66 99667-9626``). Old 8-digit mobiles start with 6 to 9; 8-digit numbers starting with 2 to 5
  are landlines and stay as they are.

Each rule is ``(name, pattern, replacement)``. They are tried in order; the first pattern that
matches rewrites the digits, once, and no later rule runs. To add a rule, add a line to
``SUBSCRIBER_RULES`` and regenerate the SQL (``python -m convkey.gen_reference_sql``).

Python ``re`` and PostgreSQL's regular expressions read the same text differently outside a small
common subset, so rules are written in that subset only, and ``check_rule`` refuses anything else:

- a pattern is anchored (``^`` ... ``$``) and made of digits, ``\\d``, digit classes such as
  ``[6-9]``, capturing groups ``( )`` and bounds ``{n}`` / ``{n,m}``;
- a replacement is digits and back references ``\\1`` to ``\\9``. PostgreSQL reads one digit after
  the backslash, so ``\\19`` is group 1 then a ``9`` (Python would read group 19:
  ``python_replacement`` spells it ``\\g<1>9`` for ``re``).
"""

from __future__ import annotations

import re

SUBSCRIBER_RULES: tuple[tuple[str, str, str], ...] = (
    ("mexico_mobile_drop_1", r"^521(\d{10})$", r"52\1"),
    ("brazil_mobile_add_9", r"^55([1-9]{2})([6-9]\d{7})$", r"55\19\2"),
)

# One token of the common subset, in a pattern and in a replacement.
_PATTERN_TOKEN = r"[0-9]|\\d|\[(?:[0-9](?:-[0-9])?)+\]|\(|\)|\{[0-9]+(?:,[0-9]+)?\}"
_PATTERN = re.compile(rf"\^(?:{_PATTERN_TOKEN})*\$")
_REPLACEMENT = re.compile(r"(?:[0-9]|\\[1-9])*")
_BACKREFERENCE = re.compile(r"\\([1-9])")


def check_rule(rule: tuple[str, str, str]) -> None:
    """Raise ValueError unless ``rule`` is a well-formed rule in the Python/PostgreSQL subset."""
    name, pattern, replacement = rule
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"rule name {name!r}: use lower snake case")
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(f"rule {name}: pattern {pattern!r} leaves the common regex subset")
    if not _REPLACEMENT.fullmatch(replacement):
        raise ValueError(f"rule {name}: replacement {replacement!r} leaves the common subset")
    groups = re.compile(pattern).groups
    if any(int(n) > groups for n in _BACKREFERENCE.findall(replacement)):
        raise ValueError(f"rule {name}: replacement {replacement!r} names a missing group")


def python_replacement(replacement: str) -> str:
    r"""The replacement as a ``re`` template: ``\1`` becomes ``\g<1>``, so ``\19`` stays group 1, '9'."""
    return _BACKREFERENCE.sub(r"\\g<\1>", replacement)

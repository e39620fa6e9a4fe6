"""Write functions/post-apply-01_phone_reference.sql: the SQL side of ``convkey.phone``.

The database checks phone digits itself (in WhatsApp ids), and must accept exactly what the runner
accepts. So the SQL is generated from the same sources: the possible lengths per calling code come
from phonenumbers' metadata, the subscriber rules from ``convkey.phone_rules``.

    python -m convkey.gen_reference_sql          # rewrite the file
    python -m convkey.gen_reference_sql --check  # exit 1 when the file differs from the output

Run it again after upgrading phonenumbers or changing a rule, and commit the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import phonenumbers

from convkey.phone import possible_total_lengths
from convkey.phone_rules import SUBSCRIBER_RULES, check_rule

MAX_CODE = 999  # country calling codes have at most three digits
OUTPUT = Path(__file__).resolve().parents[2] / "functions" / "post-apply-01_phone_reference.sql"
COMMAND = "python -m convkey.gen_reference_sql"


def _quote(text: str) -> str:
    """A SQL literal; E'' when it holds a backslash, so it reads the same whatever
    standard_conforming_strings the calling session has (a sql function is parsed at each use)."""
    quoted = text.replace("'", "''")
    if "\\" in text:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def _lengths(cc: int) -> str:
    return "'{" + ",".join(str(n) for n in sorted(possible_total_lengths(cc))) + "}'::smallint[]"


def _function(
    signature: str, returns: str, about: str, comment: str, body: str, argtypes: str
) -> str:
    """One CREATE OR REPLACE FUNCTION with its header comment and COMMENT ON FUNCTION."""
    name = signature.split("(", 1)[0]
    header = "\n".join(f"-- {line}".rstrip() for line in about.strip().splitlines())
    return f"""\
-- {signature} -> {returns}
{header}
-- Locks: none. Raises: nothing.
CREATE OR REPLACE FUNCTION {signature}
RETURNS {returns}
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
{body.strip()}
$$;

COMMENT ON FUNCTION {name}({argtypes}) IS
    {_quote(comment)};
"""


def _length_masks(codes: list[int]) -> str:
    """One bigint per calling code 1..999: bit n set when n total digits are possible."""
    masks = [0] * MAX_CODE
    for cc in codes:
        for n in possible_total_lengths(cc):
            if not 0 < n < 63:
                raise ValueError(f"calling code {cc}: length {n} does not fit a bigint bit mask")
            masks[cc - 1] |= 1 << n
    rows = []
    for start in range(0, MAX_CODE, 10):
        chunk = ", ".join(str(m) for m in masks[start : start + 10])
        comma = "," if start + 10 < MAX_CODE else ""
        rows.append(f"    {chunk}{comma}  -- {start + 1}..{min(start + 10, MAX_CODE)}")
    body = "SELECT ARRAY[\n" + "\n".join(rows) + "\n]::bigint[]"
    return _function(
        "convkey._phone_length_masks()",
        "bigint[]",
        """
Element cc (1..999) is a bit mask of the possible total digit counts (calling code + national
number) of an E.164 number with country calling code cc: bit n is set when n digits are possible;
0 for a code phonenumbers does not know. Mirrors convkey.phone.possible_total_lengths (the main
region of the code). A constant: the planner folds it into the callers, so a length check is an
array subscript and a shift, not a CASE over every calling code (which PL/pgSQL would set up again
in every transaction).""",
        "Bit masks of possible E.164 total lengths, indexed by country calling code 1..999. "
        "Generated from phonenumbers metadata.",
        body,
        "",
    )


def _possible_lengths() -> str:
    return _function(
        "convkey._phone_possible_lengths(p_country_code integer)",
        "smallint[]",
        """
The possible total digit counts (calling code + national number) of an E.164 number with this
country calling code, read from convkey._phone_length_masks(); NULL for a code phonenumbers does
not know (or knows no length for).""",
        "Possible total digit counts of an E.164 number for a country calling code; "
        "NULL when the code is unknown. Generated from phonenumbers metadata.",
        """
SELECT CASE
    WHEN (convkey._phone_length_masks())[p_country_code] <> 0
        THEN ARRAY(
            SELECT n::smallint
              FROM generate_series(1, 62) AS n
             WHERE ((convkey._phone_length_masks())[p_country_code] >> n) & 1 = 1
             ORDER BY n
        )
END""",
        "integer",
    )


def _country_code(codes: list[int]) -> str:
    whens = []
    for width in (1, 2, 3):
        same_width = [f"'{cc}'" for cc in codes if len(str(cc)) == width]
        rows = [", ".join(same_width[i : i + 12]) for i in range(0, len(same_width), 12)]
        listed = ",\n            ".join(rows)
        prefix = f"left(p_digits, {width})"
        whens.append(
            f"    WHEN {prefix} IN (\n            {listed}\n        )\n        THEN {prefix}::integer"
        )
    body = "\n".join(whens)
    return _function(
        "convkey._phone_country_code(p_digits text)",
        "integer",
        """
The country calling code at the start of a digit string (no '+'), NULL when none matches.
Calling codes are prefix-free, so at most one of the 1-, 2- and 3-digit prefixes is a code.""",
        "Country calling code at the start of E.164 digits (no +); NULL when none matches.",
        f"SELECT CASE\n{body}\nEND",
        "text",
    )


def _canonical_digits() -> str:
    whens = []
    for rule in SUBSCRIBER_RULES:
        check_rule(rule)
        name, pattern, replacement = rule
        whens.append(
            f"    -- {name}\n"
            f"    WHEN p_digits ~ {_quote(pattern)}\n"
            f"        THEN regexp_replace(p_digits, {_quote(pattern)}, {_quote(replacement)})"
        )
    body = "\n".join(whens)
    return _function(
        "convkey._canonical_phone_digits(p_digits text)",
        "text",
        """
One spelling per subscriber: applies the rules of runner/convkey/phone_rules.py to E.164 digits
(no '+'), first matching rule only, once; digits no rule matches come back unchanged.
Mirrors convkey.phone.canonical_digits.""",
        "E.164 digits (no +) rewritten by the first matching subscriber rule "
        "(Mexico +521, Brazil ninth digit); unchanged when no rule matches.",
        f"SELECT CASE\n{body}\n    ELSE p_digits\nEND",
        "text",
    )


def _digits_possible() -> str:
    return _function(
        "convkey._phone_digits_possible(p_digits text)",
        "boolean",
        """
True when a digit string (no '+', already canonical) starts with a known calling code and has
a total length that code allows; false otherwise; NULL for NULL. The check convkey.phone's
normalize_phone makes on its result. Calling codes are prefix-free, so the first of the 1-, 2-
and 3-digit prefixes with a mask is the code (a code with no possible length has mask 0, and
then no longer prefix has one either).""",
        "True when canonical E.164 digits (no +) have a known calling code "
        "and a total length possible for it.",
        """
SELECT CASE
    WHEN p_digits ~ '^[1-9][0-9]*$' AND length(p_digits) <= 62
        THEN coalesce(
            ((convkey._phone_length_masks())[
                CASE
                    WHEN (convkey._phone_length_masks())[left(p_digits, 1)::integer] <> 0
                        THEN left(p_digits, 1)::integer
                    WHEN (convkey._phone_length_masks())[left(p_digits, 2)::integer] <> 0
                        THEN left(p_digits, 2)::integer
                    ELSE left(p_digits, 3)::integer
                END
            ] >> length(p_digits)) & 1 = 1,
            false
        )
    WHEN p_digits IS NOT NULL
        THEN false
END""",
        "text",
    )


def render() -> str:
    """The whole SQL file, deterministic for one phonenumbers version and one rule table."""
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    header = f"""\
-- GENERATED FILE: do not edit. Regenerate with `{COMMAND}` (PYTHONPATH=runner)
-- from runner/convkey/phone_rules.py and the metadata of phonenumbers {phonenumbers.__version__};
-- tests/test_phone_reference_generated.py fails when this file is stale.
--
-- Why: the database reads phone digits itself (in WhatsApp ids) and must accept exactly the numbers
-- the runner's convkey.phone.normalize_phone accepts, spelled the same way.
--
-- A post-apply file: it runs on every `convkey migrate`, so everything is CREATE OR REPLACE.
-- The functions are LANGUAGE sql and deliberately not STRICT: the planner inlines a sql function
-- into its caller only when it is not STRICT or its body is provably strict, and a CASE is not.
-- Measured on PostgreSQL 15 over 100k rows: _phone_digits_possible costs about 3 us a call
-- inlined, about 700 us with all four STRICT. Each still returns NULL for NULL, as STRICT would.
-- The lengths are one constant array of bit masks rather than a CASE over ~230 calling codes:
-- PL/pgSQL sets up a simple expression's executor state again in every transaction, and for the
-- CASE that cost about 100 us per webhook call; an array subscript costs nothing to set up.
"""
    parts = [
        header,
        _length_masks(codes),
        _possible_lengths(),
        _country_code(codes),
        _canonical_digits(),
        _digits_possible(),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{args.output} is stale: run `{COMMAND}` and commit it", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""functions/post-apply-01_phone_reference.sql is what the generator writes today (no database needed).

When this fails after a phonenumbers upgrade or a rule change: run
``PYTHONPATH=runner python -m convkey.gen_reference_sql`` and commit the SQL file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import phonenumbers

from convkey import gen_reference_sql
from convkey.phone import possible_total_lengths

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = (
    "convkey._phone_length_masks()",
    "convkey._phone_possible_lengths(integer)",
    "convkey._phone_country_code(text)",
    "convkey._canonical_phone_digits(text)",
    "convkey._phone_digits_possible(text)",
)


def test_committed_file_is_current():
    assert gen_reference_sql.OUTPUT == REPO / "functions" / "post-apply-01_phone_reference.sql"
    assert gen_reference_sql.main(["--check"]) == 0


def test_check_runs_as_a_module():
    env = {**os.environ, "PYTHONPATH": str(REPO / "runner")}
    done = subprocess.run(
        [sys.executable, "-m", "convkey.gen_reference_sql", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_check_fails_on_a_stale_file_and_generation_fixes_it(tmp_path, capsys):
    target = tmp_path / "phone.sql"
    assert gen_reference_sql.main(["--check", "--output", str(target)]) == 1
    target.write_text("-- stale\n", encoding="utf-8")
    assert gen_reference_sql.main(["--check", "--output", str(target)]) == 1
    assert "stale" in capsys.readouterr().err
    assert gen_reference_sql.main(["--output", str(target)]) == 0
    assert gen_reference_sql.main(["--check", "--output", str(target)]) == 0


def test_output_is_deterministic_and_names_its_sources():
    text = gen_reference_sql.render()
    assert text == gen_reference_sql.render()
    assert text.startswith("-- GENERATED FILE")
    assert gen_reference_sql.COMMAND in text
    assert f"phonenumbers {phonenumbers.__version__}" in text


def test_output_holds_exactly_its_functions_as_post_apply_sql():
    text = gen_reference_sql.render()
    created = re.findall(r"^CREATE (?:OR REPLACE )?FUNCTION (\S+)\(", text, flags=re.M)
    assert created == [f.split("(")[0] for f in FUNCTIONS]
    assert text.count("CREATE FUNCTION") == 0  # post-apply: re-runs on every migrate
    commented = re.findall(r"^COMMENT ON FUNCTION (\S+) IS", text, flags=re.M)
    assert commented == list(FUNCTIONS)
    assert not re.search(r"\bRAISE\b", text, flags=re.I)
    # Only $$-quoted bodies, one pair per function.
    assert re.findall(r"\$\w*\$", text) == ["$$"] * (2 * len(FUNCTIONS))


def test_length_masks_hold_every_calling_code_and_nothing_else():
    """Element cc of the generated array has bit n set exactly when n total digits are possible."""
    text = gen_reference_sql.render()
    body = text.split("SELECT ARRAY[", 1)[1].split("]::bigint[]", 1)[0]
    masks = [int(n) for n in re.findall(r"\d+", re.sub(r"--[^\n]*", "", body))]
    assert len(masks) == 999
    for cc, mask in enumerate(masks, start=1):
        lengths = {n for n in range(63) if mask >> n & 1}
        assert lengths == set(possible_total_lengths(cc)), cc
    known = {cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if possible_total_lengths(cc)}
    assert {cc for cc, mask in enumerate(masks, start=1) if mask} == known

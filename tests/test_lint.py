"""Static checks: plpgsql_check over the whole schema, squawk over the migrations, the house rules for
RAISE and COMMENT ON FUNCTION, and the layout of sql/ and functions/ (yoyo reads every file there).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from convkey.migrate import migration_dirs

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR, FUNCTIONS_DIR = migration_dirs()
SOURCES = sorted([*SQL_DIR.glob("*.sql"), *FUNCTIONS_DIR.glob("*.sql")])


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- plpgsql_check ---------------------------------------------------------------------------------
# Every PL/pgSQL function and procedure of the package; a trigger function once per table it fires on.
LINT_TARGETS = """
SELECT p.oid::regprocedure::text AS signature,
       p.prorettype = 'pg_catalog.trigger'::regtype AS is_trigger,
       t.tgrelid::regclass::text AS relid, t.tgoldtable AS oldtable, t.tgnewtable AS newtable
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN pg_trigger t ON t.tgfoid = p.oid AND NOT t.tgisinternal
WHERE n.nspname = 'convkey' AND l.lanname = 'plpgsql'
ORDER BY 1, 3
"""
PLPGSQL_CHECK = """
SELECT lineno, level, sqlstate, message, detail, hint, statement, query
FROM plpgsql_check_function_tb(
    %(signature)s::regprocedure, relid => coalesce(%(relid)s::regclass, 0), fatal_errors => false,
    other_warnings => true, security_warnings => true, extra_warnings => false,
    performance_warnings => false, oldtable => %(oldtable)s, newtable => %(newtable)s)
"""
COUNT_PLPGSQL = """
SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'convkey' AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
"""


@pytest.fixture
def lint_conn(db_conn):
    """A fresh migrated clone with the plpgsql_check extension."""
    available = db_conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone()
    if not available:
        pytest.skip("plpgsql_check extension not installed: apt-get install postgresql-15-plpgsql-check")
    db_conn.execute("CREATE EXTENSION plpgsql_check")
    return db_conn


def lint_schema(conn) -> tuple[set[str], list[str], list[str]]:
    """(functions checked, trigger functions attached to no table, one line per finding)."""
    checked: set[str] = set()
    unattached: list[str] = []
    findings: list[str] = []
    cur = conn.cursor()
    for signature, is_trigger, relid, oldtable, newtable in conn.execute(LINT_TARGETS).fetchall():
        if is_trigger and relid is None:
            unattached.append(signature)
            continue
        checked.add(signature)
        params = {"signature": signature, "relid": relid, "oldtable": oldtable, "newtable": newtable}
        for lineno, level, sqlstate, message, detail, hint, statement, query in cur.execute(PLPGSQL_CHECK, params):
            where = f"{signature}" + (f" on {relid}" if relid else "") + f" line {lineno} ({statement})"
            extra = "".join(f"\n    {k}: {v}" for k, v in (("detail", detail), ("hint", hint), ("query", query)) if v)
            findings.append(f"{where}: {level} {sqlstate}: {message}{extra}")
    return checked, unattached, findings


def test_plpgsql_check_whole_schema(lint_conn):
    checked, unattached, findings = lint_schema(lint_conn)
    if unattached:
        warnings.warn("trigger functions attached to no table were not checked: " + ", ".join(unattached))
    assert not findings, (
        f"plpgsql_check found {len(findings)} problem(s) in {len(checked)} function(s); silence a warning only "
        "with a justified @plpgsql_check_options comment in the function:\n" + "\n".join(findings)
    )


def test_plpgsql_check_covers_every_function(lint_conn):
    """Guard against a vacuous pass: every PL/pgSQL function of the schema is checked."""
    checked, unattached, _ = lint_schema(lint_conn)
    in_schema = lint_conn.execute(COUNT_PLPGSQL).fetchone()[0]
    assert len(checked) + len(unattached) == in_schema
    if any(re.search(r"\bLANGUAGE\s+plpgsql\b", scrub(p.read_text()), re.I) for p in SOURCES):
        assert checked, "the sources define PL/pgSQL functions, but none was checked"


def test_plpgsql_check_reports_errors_in_functions_and_triggers(lint_conn):
    """The lint really reports: a broken function and a trigger function broken only for its table."""
    lint_conn.execute(
        """
        CREATE FUNCTION convkey._lint_probe() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN RETURN (SELECT count(*) FROM convkey.no_such_table); END $$;
        CREATE TABLE convkey._lint_probe_table (id bigint);
        CREATE FUNCTION convkey.tg_lint_probe__check() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.no_such_column := 1; RETURN NEW; END $$;
        CREATE TRIGGER _100_probe BEFORE INSERT ON convkey._lint_probe_table
            FOR EACH ROW EXECUTE FUNCTION convkey.tg_lint_probe__check();
        """
    )
    _, _, findings = lint_schema(lint_conn)
    flagged = {f.split("(")[0] for f in findings}
    assert {"convkey._lint_probe", "convkey.tg_lint_probe__check"} <= flagged, findings


# --- squawk -----------------------------------------------------------------------------------------
def squawk(*paths: Path) -> list[str]:
    """squawk's findings, one line each (file:line:column, rule, message, the source line)."""
    binary = Path(sys.executable).parent / "squawk"
    if not binary.exists():
        binary = shutil.which("squawk")
    assert binary, "squawk not found: install the test extra (pip install -e '.[test]')"
    cmd = [str(binary), "--config", str(ROOT / ".squawk.toml"), "--reporter", "json", *map(str, paths)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    try:
        violations = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError:
        pytest.fail(f"squawk exit {proc.returncode}, output not JSON:\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode in (0, 1) and (proc.returncode == 1) == bool(violations), proc.stderr
    lines = []
    for v in violations:
        path = Path(v["file"]) if Path(v["file"]).is_absolute() else ROOT / v["file"]
        source = path.read_text().splitlines()
        # squawk's JSON counts lines and columns from 0
        text = source[v["line"]].strip() if v["line"] < len(source) else ""
        lines.append(f"{rel(path)}:{v['line'] + 1}:{v['column'] + 1}: {v['rule_name']}: {v['message']}\n    {text}")
    return lines


def test_squawk_migrations():
    migrations = [p for p in sorted(SQL_DIR.glob("*.sql")) if not p.name.endswith(".rollback.sql")]
    assert migrations
    findings = squawk(*migrations)
    assert not findings, "squawk (config: .squawk.toml):\n" + "\n".join(findings)


def test_squawk_config_still_flags_unsafe_upgrades(tmp_path):
    probe = tmp_path / "9999_add_probe_index.sql"
    probe.write_text(
        "-- Why: a probe.\n-- depends: 0001_create_schema\n"
        "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '60s';\n"
        "CREATE INDEX ix_probe ON convkey.whatsapp_conversation (id);\n"
    )
    findings = squawk(probe)
    assert any(": require-concurrent-index-creation:" in f for f in findings), findings


# --- house rules in the SQL sources ------------------------------------------------------------------
def scrub(sql: str) -> str:
    """The text with comments blanked and string-literal contents blanked (offsets and lines kept).

    Dollar-quoted bodies stay: PL/pgSQL code lives there.
    """
    out = list(sql)
    n = len(sql)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif sql[i] == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and not (i > 1 and (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                elif sql[j] == "'" and sql.startswith("''", j):
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


RAISE = re.compile(r"\bRAISE\b([^;]*);", re.I)
NOTICE_LEVELS = {"DEBUG", "LOG", "INFO", "NOTICE", "WARNING"}


def raise_without_errcode(sql: str) -> list[int]:
    """Line numbers of RAISE EXCEPTION statements (or bare RAISE '...') that name no error code."""
    text = scrub(sql)
    bad = []
    for m in RAISE.finditer(text):
        words = m.group(1).split()
        if not words or words[0].upper() in NOTICE_LEVELS:
            continue  # a re-raise (RAISE;) or a notice
        if words[0].upper() == "EXCEPTION":
            words = words[1:]
        first = words[0].upper() if words else ""
        if first.startswith("'") or first == "USING" or not first:
            if not re.search(r"\bERRCODE\s*=", m.group(1), re.I):
                bad.append(text.count("\n", 0, m.start()) + 1)
        # else: RAISE [EXCEPTION] SQLSTATE '...' or a condition name: the code is explicit
    return bad


CREATED = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\s+([\w.\"]+)\s*\(", re.I)
COMMENTED = re.compile(r"\bCOMMENT\s+ON\s+(FUNCTION|PROCEDURE)\s+([\w.\"]+)", re.I)


def uncommented_routines(sql: str) -> list[str]:
    """Functions and procedures a file creates without a COMMENT ON FUNCTION/PROCEDURE for them."""
    text = scrub(sql)

    def key(m: re.Match) -> tuple[str, str]:
        return m.group(1).upper(), m.group(2).replace('"', "").lower()

    commented = {key(m) for m in COMMENTED.finditer(text)}
    return [f"{k[0]} {k[1]}" for k in (key(m) for m in CREATED.finditer(text)) if k not in commented]


def test_scrub_and_rules_on_samples():
    sample = (
        "-- RAISE EXCEPTION 'in a comment';\n"
        "CREATE OR REPLACE FUNCTION convkey.f() RETURNS void LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "    RAISE NOTICE 'fine';\n"
        "    RAISE EXCEPTION 'no code; %', E'it\\'s' USING HINT = 'ERRCODE = no';\n"
        "    RAISE 'bare';\n"
        "    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'ok';\n"
        "    RAISE SQLSTATE '22023';\n"
        "    RAISE unique_violation USING MESSAGE = 'ok';\n"
        "    RAISE;\n"
        "END $$;\n"
        "CREATE FUNCTION convkey.g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
        "COMMENT ON FUNCTION convkey.f() IS 'CREATE FUNCTION convkey.h() is only text';\n"
    )
    assert raise_without_errcode(sample) == [5, 6]
    assert uncommented_routines(sample) == ["FUNCTION convkey.g"]


def test_raise_exception_carries_errcode():
    bad = [f"{rel(p)}:{line}" for p in SOURCES for line in raise_without_errcode(p.read_text())]
    assert not bad, "RAISE EXCEPTION without USING ERRCODE (callers would only see P0001): " + ", ".join(bad)


def test_every_raised_sqlstate_is_listed_for_applications():
    """runner/convkey/errors.py is the one place listing what the SQL raises on purpose."""
    import psycopg.errors

    from convkey.errors import SQLSTATES

    names = {m.group(1) for p in SOURCES for m in re.finditer(r"ERRCODE\s*=\s*'([a-z0-9_]+)'", p.read_text())}
    assert "invalid_parameter_value" in names
    missing = sorted(n for n in names if psycopg.errors.lookup(n.upper()).sqlstate not in SQLSTATES)
    assert not missing, f"add these to convkey.errors.SQLSTATES: {missing}"


def test_every_function_has_a_comment():
    bad = [f"{rel(p)}: {name}" for p in SOURCES for name in uncommented_routines(p.read_text())]
    assert not bad, "functions without COMMENT ON FUNCTION in the same file:\n" + "\n".join(bad)


# --- layout of the migration folders ----------------------------------------------------------------
MIGRATION_NAME = re.compile(r"(\d{4})_[a-z][a-z0-9]*(?:_[a-z0-9]+)+(\.rollback)?\.sql")
FUNCTION_FILE_NAME = re.compile(r"post-apply-\d{2}_[a-z][a-z0-9]*(?:_[a-z0-9]+)*\.sql")
DEPENDS = re.compile(r"^--\s*depends:(.*)$", re.M)


def test_migration_folders_hold_only_migrations():
    bad = [rel(p) for p in sorted(SQL_DIR.iterdir()) if not (p.is_file() and MIGRATION_NAME.fullmatch(p.name))]
    bad += [rel(p) for p in sorted(FUNCTIONS_DIR.iterdir()) if not (p.is_file() and FUNCTION_FILE_NAME.fullmatch(p.name))]
    assert not bad, (
        "yoyo reads every .sql/.py file in sql/ and functions/ as a migration; names must be "
        "sql/NNNN_<verb>_<object>.sql, sql/NNNN_<verb>_<object>.rollback.sql, "
        "functions/post-apply-NN_<name>.sql (lower snake case). Offending: " + ", ".join(bad)
    )


def test_migrations_form_one_chain():
    """Unique numbers, a rollback only beside its migration, a why-comment, and `-- depends: <previous>`."""
    names = sorted(p.name for p in SQL_DIR.glob("*.sql") if MIGRATION_NAME.fullmatch(p.name))
    forward = [n[: -len(".sql")] for n in names if not n.endswith(".rollback.sql")]
    rollbacks = [n[: -len(".rollback.sql")] for n in names if n.endswith(".rollback.sql")]
    numbers = [mid[:4] for mid in forward]
    assert len(set(numbers)) == len(numbers), f"two migrations share a number: {forward}"
    assert set(rollbacks) <= set(forward), f"rollback without its migration: {sorted(set(rollbacks) - set(forward))}"
    previous = None
    for mid in forward:
        text = (SQL_DIR / f"{mid}.sql").read_text()
        assert text.startswith("--"), f"sql/{mid}.sql must start with a comment that says why"
        depends = [d for m in DEPENDS.finditer(text) for d in m.group(1).split()]
        assert depends == ([previous] if previous else []), f"sql/{mid}.sql: expected `-- depends: {previous or ''}`"
        previous = mid


def test_function_files_use_create_or_replace():
    bad = [
        rel(p)
        for p in sorted(FUNCTIONS_DIR.glob("*.sql"))
        if re.search(r"\bCREATE\s+(FUNCTION|PROCEDURE)\b", scrub(p.read_text()), re.I)
    ]
    assert not bad, f"post-apply files run on every migrate: use CREATE OR REPLACE in {bad}"

"""The wheel carries the migrations: build it, install it in a new venv outside the checkout, migrate."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest

from snapshot import applied_ids, migration_ids

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_installs_and_migrates_outside_the_checkout(tmp_path, fresh_db):
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", ROOT], cwd=ROOT)
    (wheel,) = (tmp_path / "dist").glob("convkey-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("convkey/_migrations/sql/")}
    assert "convkey/_migrations/sql/0001_create_schema.sql" in names
    assert shipped == {p.name for p in (ROOT / "sql").glob("*.sql")}
    functions = {n.rsplit("/", 1)[1] for n in names if n.startswith("convkey/_migrations/functions/")}
    assert functions, "the wheel lacks convkey/_migrations/functions/"
    assert functions == {p.name for p in (ROOT / "functions").glob("*.sql")}

    # a clean environment: nothing from this checkout or its venv may leak in
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONVKEY_DSN", "DATABASE_URL")}
    env["CONVKEY_HOME"] = str(tmp_path / "unused-home")
    work = tmp_path / "elsewhere"
    work.mkdir()
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", ROOT / "constraints.txt", wheel], cwd=work, env=env)

    where = run([venv / "bin" / "python", "-c", "from convkey.migrate import migration_dirs; print(*migration_dirs())"],
                cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    dsn = fresh_db()
    run([venv / "bin" / "convkey", "migrate", "--dsn", dsn], cwd=work, env=env)

    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'convkey'").fetchone()
    assert applied_ids(dsn) == migration_ids()

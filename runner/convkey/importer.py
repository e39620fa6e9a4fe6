"""``convkey import``: load legacy conversation and message exports (CSV or JSON Lines) with COPY.

Rows arrive exactly like the documented ``INSERT ... SELECT`` from a legacy database: conversations
with ``canonical_key`` NULL (unresolved until ``convkey backfill``), legacy ids kept (the identity
sequences are moved past them afterwards), messages whose provider id is already stored skipped
and counted, legacy directions ``inbound``/``outbound`` stored as ``in``/``out``. Each line is
checked first; a bad line is reported by its line number and skipped, never aborting the file.
Good lines go through COPY into a temporary table and one ``INSERT ... SELECT`` per file, all in
one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row

from . import queries

MAX_ID = 2**63 - 1


def _int(v: Any) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError("not an integer")
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ValueError("not an integer") from None
    if not 0 < n <= MAX_ID:
        raise ValueError("not a positive 64-bit integer")
    return n


def _text(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        v = str(v)
    if "\x00" in v:
        raise ValueError("contains a NUL character")
    return v


def _bool(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("t", "true", "1", "yes", "y"):
        return True
    if s in ("f", "false", "0", "no", "n"):
        return False
    raise ValueError("not a boolean")


def _time(v: Any) -> dt.datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return dt.datetime.fromtimestamp(v, dt.timezone.utc)
    try:
        t = dt.datetime.fromisoformat(str(v).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 timestamp") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _direction(v: Any) -> str:
    s = str(v or "").strip().lower()
    if s in ("in", "inbound"):
        return "in"
    if s in ("out", "outbound"):
        return "out"
    raise ValueError("must be in, out, inbound or outbound")


def _source(v: Any) -> str | None:
    s = _text(v)
    if s is not None and s not in ("customer", "bot", "human", "system", "automation"):
        raise ValueError("must be customer, bot, human, system or automation")
    return s


Column = tuple[str, Callable[[Any], Any]]
CONVERSATION: list[Column] = [
    ("id", _int), ("business_id", _int), ("customer_wa_id", _text), ("lead_id", _int), ("phone_e164", _text),
    ("provider", _text), ("push_name", _text), ("lead_name", _text), ("is_open", _bool),
    ("session_started_at", _time), ("last_message_at", _time), ("last_customer_message_at", _time),
    ("last_read_at", _time), ("summary_created", _bool), ("summary", _text), ("created_at", _time)]
MESSAGE: list[Column] = [
    ("id", _int), ("business_id", _int), ("conversation_id", _int), ("direction", _direction), ("provider", _text),
    ("provider_message_id", _text), ("body", _text), ("source", _source), ("wa_id", _text), ("sent_at", _time),
    ("created_at", _time)]


@dataclass
class FileReport:
    path: str
    lines: int = 0
    inserted: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "lines": self.lines, "inserted": self.inserted, "duplicates": self.duplicates,
                "bad_lines": [{"line": n, "reason": r} for n, r in self.bad]}


def read_records(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) for each data line; a record that cannot be read is a reason string."""
    fmt = fmt or ("jsonl" if path.suffix in (".jsonl", ".json", ".ndjson") else "csv")
    with path.open(newline="", encoding="utf-8") as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            for rec in reader:
                if None in rec:
                    yield reader.line_num, "more fields than the header names"
                else:
                    yield reader.line_num, rec
            return
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, f"not JSON ({exc.msg})"
                continue
            yield n, rec if isinstance(rec, dict) else "not a JSON object"


def convert(rec: dict[str, Any], columns: list[Column], default_business: int | None) -> tuple:
    row = []
    for name, conv in columns:
        try:
            row.append(conv(rec.get(name)))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"{name}: {exc}") from None
    values = dict(zip([c for c, _ in columns], row))
    if values["business_id"] is None:
        if default_business is None:
            raise ValueError("business_id is missing (or pass --business-id)")
        row[1] = values["business_id"] = default_business
    return tuple(row), values


def _load(conn: psycopg.Connection, path: Path, fmt: str | None, columns: list[Column], default_business: int | None,
          kind: str, report: FileReport) -> None:
    stage, copy_sql = queries.get(f"import_{kind}_stage"), queries.get(f"import_{kind}_copy")
    conn.execute(stage)
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for line, rec in read_records(path, fmt):
            report.lines += 1
            if isinstance(rec, str):
                report.bad.append((line, rec))
                continue
            try:
                row, values = convert(rec, columns, default_business)
                if kind == "conversations" and not (values["customer_wa_id"] or values["lead_id"]
                                                    or values["phone_e164"]):
                    raise ValueError("needs customer_wa_id, lead_id or phone_e164")
                if kind == "messages" and values["conversation_id"] is None:
                    raise ValueError("conversation_id is missing")
            except ValueError as exc:
                report.bad.append((line, str(exc)))
                continue
            copy.write_row((line, *row))
    skip: list[int] = []
    for r in conn.execute(queries.get(f"import_{kind}_taken")).fetchall():
        skip.append(r["line"])
        report.bad.append((r["line"], f"{kind[:-1]} id {r['id']} already exists in business {r['business_id']}"))
    if kind == "messages":
        for r in conn.execute(queries.get("import_messages_orphans")).fetchall():
            skip.append(r["line"])
            report.bad.append((r["line"], f"conversation {r['conversation_id']} does not exist in business "
                                          f"{r['business_id']}"))
    good = report.lines - len(report.bad)
    report.inserted = conn.execute(queries.get(f"import_{kind}_insert"), {"skip": skip}).fetchone()["n"]
    report.duplicates = good - report.inserted
    report.bad.sort()
    conn.execute(queries.get("import_sync_conversation_ids" if kind == "conversations" else "import_sync_message_ids"))


def run_import(dsn: str, *, conversations: Path | None = None, messages: Path | None = None, fmt: str | None = None,
               business_id: int | None = None) -> list[FileReport]:
    """Load the files in one transaction (conversations first); returns one report per file."""
    reports = []
    with psycopg.connect(dsn, row_factory=dict_row, application_name="convkey-import") as conn:
        for path, columns, kind in ((conversations, CONVERSATION, "conversations"), (messages, MESSAGE, "messages")):
            if path is None:
                continue
            report = FileReport(str(path))
            _load(conn, Path(path), fmt, columns, business_id, kind, report)
            reports.append(report)
        conn.commit()
    return reports

"""convkey.dedup_health, the README's runbook queries (same numbers as the view) and `convkey stats`."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from snapshot import run_cli
from test_core import goc, msg
from test_identity_graph import assign, link

from convkey.health import to_table

README = Path(__file__).resolve().parents[1] / "README.md"
COLUMNS = [
    "business_id", "live_conversations", "tombstones", "live_with_key", "live_without_key", "duplicate_keys",
    "with_lead", "lid_only_waiting", "identities_lead", "identities_phone", "identities_lid", "identities_bsuid",
    "identities_pending", "merges_total", "merges_24h", "merges_by_reason", "identity_conflicts",
    "conflicts_different_lead", "conflicts_moved", "unmerges", "links_blocked_by_separation",
]
ZERO = {c: 0 for c in COLUMNS[1:]} | {"merges_by_reason": {}}


def phone(n: int) -> str:
    return f"+9725000000{n:02d}"


def jid(n: int) -> str:
    return f"9725000000{n:02d}@s.whatsapp.net"


def lid(n: int) -> str:
    return f"8239903148{n:04d}@lid"


def health(conn) -> dict[int, dict]:
    cur = conn.execute("SELECT * FROM convkey.dedup_health ORDER BY business_id")
    names = [c.name for c in cur.description]
    assert names == COLUMNS
    return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}


@pytest.fixture
def scenario(db_conn):
    """Business 1 goes through every rule; business 2 has one thread; business 3 only a learned link."""
    c = db_conn
    a = msg(c, lid(1), "a1")[1]                      # a LID thread ...
    msg(c, jid(1), "a2")                             # ... and the phone's: one auto merge when linked
    link(c, lid(1), jid(1), "lid-mapping")
    assign(c, a, 501, "Lead A")
    goc(c, jid(2), lead=601)
    goc(c, jid(2), lead=602)                         # another lead, same phone: refused, counted
    msg(c, lid(2), "d1", phone=phone(3))
    msg(c, jid(4), "d2")
    link(c, lid(2), jid(4))                          # the LID moves to the newer phone, counted
    msg(c, lid(3), "e1")
    msg(c, jid(5), "e2")
    link(c, lid(3), jid(5))                          # merged ...
    merge_id = c.execute("SELECT max(id) FROM convkey.conversation_merge").fetchone()[0]
    c.execute("SELECT convkey.unmerge(1, %s)", (merge_id,))   # ... undone ...
    link(c, lid(3), jid(5))                          # ... and two automatic links refused since
    link(c, lid(3), jid(5))
    g = msg(c, jid(6), "f1")[1]
    h = msg(c, jid(7), "f2")[1]
    c.execute("SELECT convkey.merge_conversations(1, %s, %s, 'support_ticket')", (g, h))
    link(c, "US.13491208655302741918", jid(6))
    link(c, lid(4), jid(8), "history")               # a pending person: no conversation yet
    c.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) "
              "VALUES (1, '972500000099@s.whatsapp.net')")  # a legacy row without a key
    msg(c, lid(5), "i1")                             # a LID-only thread waiting for its phone
    msg(c, jid(1), "b2", business=2)
    link(c, lid(6), jid(9), business=3)
    return c


def test_every_business_with_data_has_a_row(db_conn):
    assert health(db_conn) == {}
    link(db_conn, lid(1), jid(1), business=9)  # identities only
    assert health(db_conn) == {9: {"business_id": 9, **ZERO, "identities_phone": 1, "identities_lid": 1,
                                   "identities_pending": 2}}


def test_view_after_a_scenario(scenario):
    rows = health(scenario)
    assert rows[1] == {
        "business_id": 1, "live_conversations": 10, "tombstones": 2, "live_with_key": 9, "live_without_key": 1,
        "duplicate_keys": 0, "with_lead": 3, "lid_only_waiting": 2,
        "identities_lead": 3, "identities_phone": 8, "identities_lid": 5, "identities_bsuid": 1,
        "identities_pending": 2,
        "merges_total": 3, "merges_24h": 3,
        "merges_by_reason": {"auto": {"total": 2, "last_24h": 2}, "support_ticket": {"total": 1, "last_24h": 1}},
        "identity_conflicts": 2, "conflicts_different_lead": 1, "conflicts_moved": 1, "unmerges": 1,
        # two refused links, each counted for both of its identities (the LID and the phone)
        "links_blocked_by_separation": 4,
    }
    assert rows[2] == {"business_id": 2, **ZERO, "live_conversations": 1, "live_with_key": 1,
                       "identities_phone": 1}
    assert rows[3] == {"business_id": 3, **ZERO, "identities_phone": 1, "identities_lid": 1, "identities_pending": 2}
    assert sorted(rows) == [1, 2, 3]


def test_merges_24h_counts_only_the_last_day(scenario):
    scenario.execute("UPDATE convkey.conversation_merge SET merged_at = now() - interval '2 days' "
                     "WHERE reason = 'support_ticket'")
    row = health(scenario)[1]
    assert (row["merges_total"], row["merges_24h"]) == (3, 2)
    assert row["merges_by_reason"]["support_ticket"] == {"total": 1, "last_24h": 0}


def test_filter_by_business_matches_the_whole_view(scenario):
    whole = health(scenario)
    for b in whole:
        cur = scenario.execute("SELECT * FROM convkey.dedup_health WHERE business_id = %s", (b,))
        assert dict(zip([c.name for c in cur.description], cur.fetchone())) == whole[b]


def duplicate_a_key(conn) -> None:
    """What the unique key prevents, staged: a second live conversation with business 2's key."""
    conn.execute("ALTER TABLE convkey.whatsapp_conversation DROP CONSTRAINT uq_whatsapp_conversation_canonical_key")
    conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, canonical_key, phone_e164) "
                 "VALUES (2, 'phone:2:+972500000001', '+972500000001')")


def test_duplicate_keys_counts_a_broken_uniqueness(scenario):
    duplicate_a_key(scenario)
    rows = health(scenario)
    assert (rows[2]["duplicate_keys"], rows[2]["live_conversations"]) == (1, 2)
    assert rows[1]["duplicate_keys"] == 0


# --- the README's runbook queries ----------------------------------------------------------------
def runbook_statements() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Health and runbook queries\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one SQL block"
    statements = [s.strip() for s in blocks[0].split(";") if s.strip()]
    assert statements[0] == "SET search_path = convkey" and len(statements) == 4, statements
    return statements


def run_runbook(conn) -> list[dict[int, dict]]:
    results = []
    for sql in runbook_statements():
        cur = conn.execute(sql)
        if cur.description:
            names = [c.name for c in cur.description]
            results.append({row[0]: dict(zip(names, row)) for row in cur.fetchall()})
    conn.execute("RESET search_path")
    return results


@pytest.mark.parametrize("broken", [False, True], ids=["unique", "duplicate-staged"])
def test_runbook_queries_give_the_views_numbers(scenario, broken):
    if broken:
        duplicate_a_key(scenario)
    view = health(scenario)
    duplicates, coverage, leads = run_runbook(scenario)
    live = {b: r for b, r in view.items() if r["live_conversations"]}
    assert set(duplicates) == set(coverage) == set(leads) == set(live)
    for b, r in live.items():
        n, keyed = r["live_conversations"], r["live_with_key"]
        assert duplicates[b]["conversations"] == coverage[b]["conversations"] == leads[b]["conversations"] == n
        # every duplicated key appears twice here, so distinct keys = keyed rows - duplicate keys
        assert duplicates[b]["distinct_keys"] == keyed - r["duplicate_keys"]
        assert duplicates[b]["duplicate_rate"] == 1 - Decimal(keyed - r["duplicate_keys"]) / keyed
        assert (duplicates[b]["duplicate_rate"] == 0) == (r["duplicate_keys"] == 0)
        assert coverage[b]["with_key"] == keyed and coverage[b]["key_coverage"] == Decimal(keyed) / n
        assert leads[b]["with_lead"] == r["with_lead"] and leads[b]["lead_linked"] == Decimal(r["with_lead"]) / n
    assert (duplicates[2]["duplicate_rate"] > 0) is broken


# --- convkey stats -------------------------------------------------------------------------------
def test_stats_json(scenario, db_dsn):
    proc = run_cli("stats", "--dsn", db_dsn, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == list(health(scenario).values())
    proc = run_cli("stats", "--dsn", db_dsn, "--json", "--business-id", "3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [health(scenario)[3]]
    proc = run_cli("stats", "--dsn", db_dsn, "--json", "--business-id", "4")
    assert (proc.returncode, json.loads(proc.stdout)) == (0, [])


def test_stats_table(scenario, db_dsn):
    proc = run_cli("stats", "--dsn", db_dsn)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["business", "1", "2", "3"]
    cells = {line.split()[0]: line.split()[1:] for line in lines if line and not line.startswith(" ")}
    assert cells["live_conversations"] == ["10", "1", "0"]
    assert cells["links_blocked_by_separation"] == ["4", "0", "0"]
    assert "  support_ticket (total/24h)" in proc.stdout and " 1/1 " in proc.stdout
    assert len({len(line) for line in lines}) == 1, "aligned: every line has the same width"


def test_stats_table_wraps_many_businesses_at_100_columns():
    rows = [{"business_id": b, **ZERO, "live_conversations": 10 ** 6,
             "merges_by_reason": {"auto": {"total": 3, "last_24h": 1}}} for b in range(1, 31)]
    text = to_table(rows)
    assert max(len(line) for line in text.splitlines()) <= 100
    blocks = text.split("\n\n")
    assert len(blocks) > 1
    assert [b for block in blocks for b in block.splitlines()[0].split()[1:]] == [str(b) for b in range(1, 31)]
    assert to_table([]).startswith("no convkey data")


def test_stats_reports_connection_errors_without_a_traceback(tmp_path):
    proc = run_cli("stats", "--dsn", f"postgresql://nobody@/none?host={tmp_path}&connect_timeout=2", timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr

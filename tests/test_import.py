"""convkey import: COPY-based loading of legacy exports; bad lines reported by number, never fatal."""

import json
import subprocess
import sys

import psycopg

from convkey.backfill import run_backfill

CONVERSATIONS = """id,business_id,customer_wa_id,lead_id,phone_e164,push_name,last_message_at
5001,3,972531111111@s.whatsapp.net,,,Dana,2025-01-02T10:00:00Z
5002,3,052-111-1112,,,,2025-01-03
5003,3,,,,,2025-01-03
5004,x,972531111112@s.whatsapp.net,,,,
5001,3,972531111113@s.whatsapp.net,,,,
5005,3,82399031477777@lid,77,,,2025-01-01
5006,3,972531111111:4@s.whatsapp.net,,,,2025-01-05
"""

MESSAGES = [
    {"business_id": 3, "conversation_id": 5001, "direction": "inbound", "provider_message_id": "old-1", "body": "hi",
     "sent_at": "2025-01-02T10:00:00Z"},
    {"business_id": 3, "conversation_id": 5002, "direction": "outbound", "provider_message_id": "old-2"},
    {"business_id": 3, "conversation_id": 5002, "direction": "outbound", "provider_message_id": "old-2"},
    {"business_id": 3, "conversation_id": 9999, "direction": "in", "provider_message_id": "old-3"},
    {"business_id": 3, "conversation_id": 5001, "direction": "sideways", "provider_message_id": "old-4"},
    "not json",
    {"business_id": 3, "conversation_id": 5006, "direction": "in", "provider_message_id": "old-5",
     "sent_at": "2025-01-05T08:00:00Z"},
]


def write_files(tmp_path):
    conv = tmp_path / "conversations.csv"
    conv.write_text(CONVERSATIONS)
    msgs = tmp_path / "messages.jsonl"
    msgs.write_text("\n".join(m if isinstance(m, str) else json.dumps(m) for m in MESSAGES) + "\n")
    return conv, msgs


def test_import_reports_bad_lines_and_loads_the_rest(db_dsn, tmp_path):
    conv, msgs = write_files(tmp_path)
    out = subprocess.run([sys.executable, "-m", "convkey", "import", "--dsn", db_dsn, "--conversations", str(conv),
                          "--messages", str(msgs), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    c, m = json.loads(out.stdout)
    assert (c["lines"], c["inserted"], c["duplicates"]) == (7, 4, 0)
    assert [b["line"] for b in c["bad_lines"]] == [4, 5, 6]
    assert (m["lines"], m["inserted"], m["duplicates"]) == (7, 3, 1)
    assert [b["line"] for b in m["bad_lines"]] == [4, 5, 6]
    assert "972531111113" not in out.stdout
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT id, canonical_key, push_name FROM convkey.whatsapp_conversation ORDER BY id").fetchall()
        assert rows == [(5001, None, "Dana"), (5002, None, None), (5005, None, None), (5006, None, None)]
        assert [r[0] for r in conn.execute("SELECT direction FROM convkey.whatsapp_message ORDER BY id")] == \
            ["in", "out", "in"]
        # the identity sequences moved past the legacy ids
        new = conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(3, '972539999999@c.us')"
                           ).fetchone()[0]
        assert new > 5006
    # then the backfill resolves and merges them (5001 and 5006 are one phone)
    report = run_backfill(db_dsn, execute=True, business_id=3)
    assert report.groups == [{"business_id": 3, "primary": 5006, "duplicates": [5001], "messages_moved": 1}]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        keys = conn.execute("SELECT id, canonical_key FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL "
                            "AND business_id = 3 ORDER BY id").fetchall()
        assert keys[:3] == [(5002, "phone:3:+972521111112"), (5005, "lead:3:77"), (5006, "phone:3:+972531111111")]


def test_import_again_counts_duplicates_and_refuses_taken_ids(db_dsn, tmp_path):
    conv, msgs = write_files(tmp_path)
    from convkey.importer import run_import

    run_import(db_dsn, conversations=conv, messages=msgs)
    c, m = run_import(db_dsn, conversations=conv, messages=msgs)
    assert c.inserted == 0 and len(c.bad) == 7  # 3 bad lines, and the 4 ids loaded the first time are taken
    assert m.inserted == 0 and m.duplicates == 4

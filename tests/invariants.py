"""The consistency rules every convkey database must satisfy, whatever happened to it (faults,
concurrency, any sequence of API calls). ``check_invariants(conn)`` returns the violations, one
sentence each; an empty list means the data is consistent. Read-only; safe on a live database.

1. no live duplicate keys: a canonical key names at most one live conversation of a business;
2. every identity owned by a conversation is owned by a live, resolved one (never a tombstone,
   never an unresolved legacy row); an identity has exactly one owner (conversation or pending);
3. every live resolved conversation's key comes from its strongest owned identity
   (lead > phone > lid > bsuid); its lead_id and phone_e164, when set, are identities it owns,
   and it has them set when it owns a lead or a phone;
4. every message sits in a live conversation (resolved, or an unresolved legacy row): never in a
   tombstone;
5. every tombstone resolves (``convkey.resolve_conversation_id``) to a live conversation, and the
   duplicate of every merge that was not undone is a tombstone.

Uniqueness of provider message ids is a constraint of the schema; whether a given message is
present is the caller's to check (it knows what it sent).
"""

from __future__ import annotations

from typing import Any

import psycopg

SAMPLE = 5  # offending rows named per rule; the count is always complete

_RULES: list[tuple[str, str]] = [
    ("live duplicate key", """
        SELECT c.business_id, c.canonical_key, count(*) AS n, array_agg(c.id ORDER BY c.id) AS ids
          FROM convkey.whatsapp_conversation c
         WHERE c.merged_into_id IS NULL AND c.canonical_key IS NOT NULL AND {scope_c}
         GROUP BY c.business_id, c.canonical_key HAVING count(*) > 1"""),
    ("identity owned by a missing, merged-away or unresolved conversation", """
        SELECT i.business_id, i.kind, i.value, i.conversation_id, c.merged_into_id, c.canonical_key
          FROM convkey.identity i
          LEFT JOIN convkey.whatsapp_conversation c ON c.business_id = i.business_id AND c.id = i.conversation_id
         WHERE i.conversation_id IS NOT NULL AND {scope_i}
           AND (c.id IS NULL OR c.merged_into_id IS NOT NULL OR c.canonical_key IS NULL)"""),
    ("identity without exactly one owner", """
        SELECT i.business_id, i.kind, i.value FROM convkey.identity i
         WHERE (i.conversation_id IS NULL) = (i.pending_person_id IS NULL) AND {scope_i}"""),
    ("live conversation whose key is not its strongest identity", """
        WITH owned AS (
            SELECT i.business_id, i.conversation_id,
                   array_agg(i.value) FILTER (WHERE i.kind = 'lead') AS leads,
                   array_agg(i.value) FILTER (WHERE i.kind = 'phone') AS phones,
                   array_agg(i.kind || ':' || i.business_id || ':' || i.value)
                       FILTER (WHERE i.kind = 'lid') AS lid_keys,
                   array_agg(i.kind || ':' || i.business_id || ':' || i.value)
                       FILTER (WHERE i.kind = 'bsuid') AS bsuid_keys
              FROM convkey.identity i
             WHERE i.conversation_id IS NOT NULL AND {scope_i}
             GROUP BY i.business_id, i.conversation_id)
        SELECT c.business_id, c.id, c.canonical_key, c.lead_id, c.phone_e164,
               o.leads, o.phones, o.lid_keys, o.bsuid_keys
          FROM convkey.whatsapp_conversation c
          LEFT JOIN owned o ON o.business_id = c.business_id AND o.conversation_id = c.id
         WHERE c.merged_into_id IS NULL AND c.canonical_key IS NOT NULL AND {scope_c}
           AND ((c.lead_id IS NULL OR c.lead_id::text = ANY (o.leads))
            AND (c.phone_e164 IS NULL OR c.phone_e164 = ANY (o.phones))
            AND (o.leads IS NULL OR c.lead_id IS NOT NULL)
            AND (o.phones IS NULL OR c.phone_e164 IS NOT NULL)
            AND CASE
                    WHEN c.lead_id IS NOT NULL
                        THEN c.canonical_key = 'lead:' || c.business_id || ':' || c.lead_id
                    WHEN c.phone_e164 IS NOT NULL
                        THEN c.canonical_key = 'phone:' || c.business_id || ':' || c.phone_e164
                    WHEN o.lid_keys IS NOT NULL THEN c.canonical_key = ANY (o.lid_keys)
                    WHEN o.bsuid_keys IS NOT NULL THEN c.canonical_key = ANY (o.bsuid_keys)
                    ELSE false  -- a resolved conversation that owns no identity
                END) IS NOT TRUE"""),
    ("message in a missing or merged-away conversation", """
        SELECT m.business_id, m.id, m.provider_message_id, m.conversation_id, c.merged_into_id
          FROM convkey.whatsapp_message m
          LEFT JOIN convkey.whatsapp_conversation c ON c.business_id = m.business_id AND c.id = m.conversation_id
         WHERE (c.id IS NULL OR c.merged_into_id IS NOT NULL) AND {scope_m}"""),
    ("merge not undone whose duplicate is live", """
        SELECT g.business_id, g.id AS merge_id, g.primary_id, g.duplicate_id
          FROM convkey.conversation_merge g
          JOIN convkey.whatsapp_conversation c ON c.business_id = g.business_id AND c.id = g.duplicate_id
         WHERE g.undone_at IS NULL AND c.merged_into_id IS NULL AND {scope_g}"""),
]

# a tombstone chain is followed by the API function itself
_TOMBSTONES = """
    SELECT t.business_id, t.id, t.resolved, l.merged_into_id IS NULL AND l.id IS NOT NULL AS live
      FROM (SELECT c.business_id, c.id, convkey.resolve_conversation_id(c.business_id, c.id) AS resolved
              FROM convkey.whatsapp_conversation c
             WHERE c.merged_into_id IS NOT NULL AND {scope_c}) t
      LEFT JOIN convkey.whatsapp_conversation l ON l.business_id = t.business_id AND l.id = t.resolved
     ORDER BY t.business_id, t.id"""
_ONE_TOMBSTONE = "SELECT convkey.resolve_conversation_id(%(b)s, %(id)s)"
_TOMBSTONE_IDS = """
    SELECT c.business_id, c.id FROM convkey.whatsapp_conversation c
     WHERE c.merged_into_id IS NOT NULL AND {scope_c} ORDER BY c.business_id, c.id"""


def _scoped(sql: str, business_id: int | None) -> str:
    aliases = {"scope_c": "c", "scope_i": "i", "scope_m": "m", "scope_g": "g"}
    cond = {k: ("true" if business_id is None else f"{a}.business_id = %(business)s") for k, a in aliases.items()}
    return sql.format(**cond)


def _row(row: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items()) if isinstance(row, dict) else repr(tuple(row))


def check_invariants(conn: psycopg.Connection, business_id: int | None = None) -> list[str]:
    """Violations of the rules above (all businesses, or one), as sentences; [] when consistent.

    ``conn`` may be in any mode; the checks run in one REPEATABLE READ read-only transaction when
    the connection is idle in autocommit (one snapshot for every rule), else in the caller's."""
    from psycopg.rows import dict_row

    params = {"business": business_id}
    out: list[str] = []
    own_tx = conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.cursor(row_factory=dict_row) as cur:
        if own_tx:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            for name, sql in _RULES:
                rows = cur.execute(_scoped(sql, business_id), params).fetchall()
                if rows:
                    sample = "; ".join(_row(r) for r in rows[:SAMPLE])
                    out.append(f"{name}: {len(rows)} row(s), e.g. {sample}")
            bad = _tombstones(cur, business_id, params)
            if bad:
                out.append(f"tombstone that does not resolve to a live conversation: {len(bad)}, e.g. "
                           + "; ".join(bad[:SAMPLE]))
        finally:
            if own_tx:
                cur.execute("ROLLBACK")
    return out


def _tombstones(cur: psycopg.Cursor, business_id: int | None, params: dict[str, Any]) -> list[str]:
    """Tombstones that resolve_conversation_id does not lead to a live conversation. One set-based
    call; when it raises (a cycle, a dangling id), each tombstone alone, to name the culprits."""
    cur.execute("SAVEPOINT invariants")
    try:
        rows = cur.execute(_scoped(_TOMBSTONES, business_id), params).fetchall()
        cur.execute("RELEASE SAVEPOINT invariants")
        return [f"business {r['business_id']} tombstone {r['id']} -> {r['resolved']} (not live)"
                for r in rows if not r["live"]]
    except psycopg.Error:
        cur.execute("ROLLBACK TO SAVEPOINT invariants")
    bad = []
    for t in cur.execute(_scoped(_TOMBSTONE_IDS, business_id), params).fetchall():
        cur.execute("SAVEPOINT invariants")
        try:
            cur.execute(_ONE_TOMBSTONE, {"b": t["business_id"], "id": t["id"]})
            cur.execute("RELEASE SAVEPOINT invariants")
        except psycopg.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT invariants")
            bad.append(f"business {t['business_id']} tombstone {t['id']}: SQLSTATE {exc.sqlstate}")
    return bad

"""Many webhooks at once for the same people: one conversation per person, every message once."""

import os
import random
import threading

import psycopg

WORKERS = 16
PEOPLE = 50


def person_forms(k: int) -> list[tuple[str, str | None, int | None]]:
    """(customer_wa_id, p_phone_e164, p_lead_id) forms naming person k."""
    digits = f"97250{1000000 + k:07d}"
    lid = f"{82399031480000 + k}@lid"
    forms = [
        (f"{digits}@s.whatsapp.net", None, None),
        (f"{digits}:{k % 20}@s.whatsapp.net", None, None),
        (f"{digits}@c.us", None, None),
        (f"+{digits}", None, None),
        (lid, None, None),
        (f"{82399031480000 + k}:3@lid", None, None),
        (lid, f"+{digits}", None),  # the LID-phone link, as Baileys' remoteJidAlt reveals it
    ]
    if k % 3 == 0:
        forms.append((f"{digits}@s.whatsapp.net", None, 1000 + k))
    return forms


def test_concurrent_record_message_one_conversation_per_person(db_dsn):
    rng = random.Random(int(os.environ.get("CONVKEY_SEED", "20261125")))
    events = []
    for k in range(PEOPLE):
        forms = person_forms(k)
        for f in forms:  # every form at least once, so every person is linked
            events.append((k, f))
        for _ in range(12):
            events.append((k, rng.choice(forms)))
    events = [(k, f, f"p{k}-m{i}") for i, (k, f) in enumerate(events)]
    retries = rng.sample(events, len(events) // 10)  # retried deliveries of the same message id
    stream = events + retries
    rng.shuffle(stream)
    chunks = [stream[i::WORKERS] for i in range(WORKERS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(WORKERS)

    def work(chunk):
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                barrier.wait()
                for _k, (wa_id, phone, lead), pmid in chunk:
                    conn.execute(
                        "SELECT * FROM convkey.record_message(1, %s, 'in', %s, 'hi', p_phone_e164 => %s, "
                        "p_lead_id => %s)", (wa_id, pmid, phone, lead))
        except BaseException as exc:  # any error reaching a caller fails the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        live = conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL"
                            ).fetchone()[0]
        assert live == PEOPLE
        stored = conn.execute("SELECT provider_message_id, count(*) FROM convkey.whatsapp_message "
                              "GROUP BY 1").fetchall()
        assert {p for p, _ in stored} == {pmid for _, _, pmid in events}
        assert all(n == 1 for _, n in stored)
        # every message sits in its person's live conversation
        misplaced = conn.execute("""
            SELECT count(*) FROM convkey.whatsapp_message m
              JOIN convkey.whatsapp_conversation c ON c.business_id = m.business_id AND c.id = m.conversation_id
             WHERE c.merged_into_id IS NOT NULL""").fetchone()[0]
        assert misplaced == 0
        per_person = conn.execute("""
            SELECT split_part(m.provider_message_id, '-', 1), count(DISTINCT m.conversation_id)
              FROM convkey.whatsapp_message m GROUP BY 1""").fetchall()
        assert len(per_person) == PEOPLE and all(n == 1 for _, n in per_person)
        dup_keys = conn.execute("SELECT count(*) - count(DISTINCT canonical_key) FROM convkey.whatsapp_conversation "
                                "WHERE canonical_key IS NOT NULL").fetchone()[0]
        assert dup_keys == 0
        leads = conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL "
                             "AND canonical_key LIKE 'lead:%'").fetchone()[0]
        assert leads == len([k for k in range(PEOPLE) if k % 3 == 0])

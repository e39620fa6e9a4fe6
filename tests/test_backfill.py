"""convkey backfill: dry run first, resolve and merge legacy rows, resumable, idempotent, online."""

import gc
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import read_vectors, table_checksums
from convkey.backfill import (LANE_ROWS, MERGE_CHUNK, Backfill, _LaneFeed, candidates_literal, derive_identities,
                              lane_rows, normalize_batch, print_report, run_backfill, set_wal_compression,
                              wal_compression_for)
import convkey.backfill
from convkey import queries
from convkey.errors import InvalidIdentifier
from convkey.progress import Progress
from legacy import check_one_conversation_per_person, forms, generate

BOOKKEEPING = {"backfill_cursor"}


def data_checksums(conn):
    """Every convkey table's contents (sequences and the backfill's own cursor left out)."""
    sums = table_checksums(conn)
    return {k: v for k, v in sums.items() if not k.endswith("_seq") and k not in BOOKKEEPING}


def cli(dsn, *args):
    return subprocess.run([sys.executable, "-m", "convkey", "backfill", "--dsn", dsn, *args],
                          capture_output=True, text=True, timeout=300)


def test_dry_run_writes_nothing_and_matches_execute(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        legacy = generate(conn, 120)
        before = data_checksums(conn)
    plan = run_backfill(db_dsn, batch_size=37)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert data_checksums(conn) == before
    outcome = run_backfill(db_dsn, execute=True, batch_size=37)
    assert plan.plan() == outcome.plan()
    assert outcome.groups and outcome.messages_moved > 0
    assert outcome.unresolvable_count == legacy.unresolvable_rows
    assert len(outcome.unresolvable) == min(legacy.unresolvable_rows, 20)  # a sample; the rest stays listed in the table
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)
        audit = conn.execute("SELECT count(*) FROM convkey.conversation_merge WHERE reason = 'backfill'").fetchone()[0]
        assert audit == outcome.duplicates_merged >= sum(len(g["duplicates"]) for g in outcome.groups)
        groups = conn.execute("SELECT count(DISTINCT primary_id) FROM convkey.conversation_merge "
                              "WHERE reason = 'backfill'").fetchone()[0]
        assert outcome.group_count == groups and len(outcome.groups) == min(groups, 20)
        # legacy directions were stored as in/out
        assert {r[0] for r in conn.execute("SELECT DISTINCT direction FROM convkey.whatsapp_message")} <= {"in", "out"}


def test_rerun_is_a_no_op_and_exit_codes(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 60, broken=2)
    first = cli(db_dsn, "--execute", "--json")
    assert first.returncode == 1, first.stderr  # finished, unresolvable rows remain
    report = json.loads(first.stdout)
    assert report["unresolvable"] == 2 and report["mode"] == "execute"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        before = data_checksums(conn)
    again = cli(db_dsn, "--execute", "--json")
    assert again.returncode == 1
    second = json.loads(again.stdout)
    assert second["resolved_by_kind"] == {} and second["duplicate_groups"] == 0 and second["merge_outcomes"] == {}
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert data_checksums(conn) == before
    # the dry run's text report names the unresolvable rows with masked identifiers
    text = cli(db_dsn)
    assert "DRY RUN" in text.stdout and "unresolvable rows:       2" in text.stdout
    assert "120363000000000000" not in text.stdout


def test_clean_data_exits_zero_and_skip_flags(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        legacy = generate(conn, 80, broken=0)
    only_resolve = run_backfill(db_dsn, execute=True, skip_merge=True)
    assert only_resolve.deferred > 0 and not only_resolve.groups
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        waiting = conn.execute("SELECT count(*) FROM convkey.backfill_row WHERE status = 'deferred'").fetchone()[0]
        assert waiting == only_resolve.deferred
    merged = run_backfill(db_dsn, execute=True, skip_backfill=True)
    assert merged.groups and merged.rows_read == 0
    done = cli(db_dsn, "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)


def _sql_identities(conn, rows, phones, wa_phones, errors):
    """convkey._backfill_identities for each row: (kinds, values, reason)."""
    return conn.execute(
        "SELECT d.o_kinds, d.o_values, d.o_reason "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
        "WITH ORDINALITY AS u(b, lead, phone, wa, wa_phone, err, n) "
        "CROSS JOIN LATERAL convkey._backfill_identities(u.b, u.lead, u.phone, u.wa, u.wa_phone, u.err) AS d "
        "ORDER BY u.n",
        ([r["business_id"] for r in rows], [r["lead_id"] for r in rows], phones,
         [r["customer_wa_id"] for r in rows], wa_phones, errors)).fetchall()


def _check_runner_derives_as_sql(conn, rows):
    """Asserts derive_identities against convkey._backfill_identities row by row; returns its results."""
    phones, wa_phones, errors = normalize_batch(rows, "IL")
    want = _sql_identities(conn, rows, phones, wa_phones, errors)
    derived = []
    for row, phone, wa_phone, err, (kinds, values, reason) in zip(rows, phones, wa_phones, errors, want):
        got = derive_identities(row["business_id"], row["lead_id"], row["customer_wa_id"], phone, wa_phone, err)
        if reason is None:
            assert got == (kinds, values), row
        else:
            assert got is None, (row, reason)
        derived.append(got)
    return derived


def _vector_rows():
    """Every identifier vector as customer_wa_id, alone, with a lead, with a phone (the same
    person's, another's, a national format, garbage), with an impossible business or lead."""
    raws = [r[0] for r in read_vectors("wa_ids.csv")] + [None, "", "   ", " 972501234567@s.whatsapp.net ",
                                                         "052-123-4567", "US.123456", "us.ent.99"]
    extras = [(1, None, None), (1, 41, None), (1, None, "+972501234567"), (1, 41, "+972501234567"),
              (1, None, "050-123-4567"), (1, None, "+14155550123"), (1, None, "not a phone"), (0, None, None),
              (2, -3, None), (1, 0, "+972501234567")]
    return [{"business_id": b, "lead_id": lead, "phone_e164": phone, "customer_wa_id": raw}
            for raw in raws for b, lead, phone in extras]


def test_the_runner_derives_each_row_as_the_sql_grammar_does(db_conn):
    """derive_identities (the runner's grammar) gives exactly the identities
    convkey._backfill_identities gives for every row SQL resolves, and leaves out every row SQL
    gives a reason (the batch derives those itself): every identifier vector, alone and with
    leads and phones that agree, disagree or are broken."""
    derived = _check_runner_derives_as_sql(db_conn, _vector_rows())
    assert sum(d is not None for d in derived) > 100 and sum(d is None for d in derived) > 100


_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # what text can hold
_wa_text = st.one_of(
    st.sampled_from([r[0] for r in read_vectors("wa_ids.csv")]),
    st.builds(lambda d, server, dev: f"{d}{dev}@{server}", st.from_regex(r"[0-9]{1,34}", fullmatch=True),
              st.sampled_from(["s.whatsapp.net", "c.us", "lid", "hosted", "hosted.lid", "g.us", "broadcast", "x"]),
              st.sampled_from(["", ":1", ":12", ":1234", ".1", "_2:3", ".12345"])),
    st.from_regex(r"\+?[0-9 ()-]{0,18}", fullmatch=True),
    st.from_regex(r"[a-zA-Z]{2}(\.ENT)?\.[0-9]{0,66}", fullmatch=True),
    st.text(_chars, max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({
    "business_id": st.integers(-1, 3), "lead_id": st.none() | st.integers(-2, 10**12),
    "phone_e164": st.none() | _wa_text, "customer_wa_id": st.none() | _wa_text}), min_size=1, max_size=20))
def test_the_runner_derives_generated_rows_as_the_sql_grammar_does(db_conn, rows):
    """The same, over generated rows: JIDs of every server, device and agent form and length,
    phones typed by people, BSUIDs, and any text."""
    _check_runner_derives_as_sql(db_conn, rows)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.none() | st.tuples(st.integers(1, 2**62), st.integers(1, 2**62),
                                      st.lists(st.text(_chars), max_size=3), st.lists(st.text(_chars), max_size=3)),
                max_size=5))
def test_the_runners_candidate_literal_reads_back_as_written(db_conn, rows):
    """candidates_literal quotes whatever it is given (quotes, backslashes, braces, commas,
    spaces, NULL, empty strings): PostgreSQL reads back the same elements."""
    _check_literal_reads_back(db_conn, rows)


def _check_literal_reads_back(conn, rows):
    got = conn.execute(
        "SELECT c.business_id, c.conversation_id, c.kinds, c.vals, c.reason "
        "FROM unnest(%s::convkey.backfill_candidate[]) WITH ORDINALITY AS c ORDER BY ordinality",
        (candidates_literal(rows),)).fetchall()
    assert [tuple(g) for g in got] == [(None,) * 5 if r is None else (*r, None) for r in rows]


def test_the_candidate_literal_writes_identifiers_plainly_and_the_rest_quoted(db_conn):
    """Identifiers as the grammar writes them take the literal's unquoted form; a text it must
    quote (NULL in any case, empty, a comma, a space, a quote) takes the quoted one; both read
    back as written."""
    plain = (1, 7, ["lead", "phone", "lid", "bsuid"], ["42", "+972501234567", "82399031480511", "US.ENT.123"])
    assert candidates_literal([plain]) == ('{"(1,7,\\"{lead,phone,lid,bsuid}\\",'
                                           '\\"{42,+972501234567,82399031480511,US.ENT.123}\\",)"}')
    rows = [plain, None] + [(2, n, ["lid", "phone"], ["5", v]) for n, v in enumerate(
        ["NULL", "null", "Nullx", "", "a,b", "a b", 'a"b', "a\\b", "{x}", "+1"])] + [(3, 1, [], [])]
    _check_literal_reads_back(db_conn, rows)


def test_the_batches_derive_only_what_the_runner_left_out(db_dsn, pg_server):
    """With the runner's derivation (the default) the SQL grammar derives only the rows it gives a
    reason; without it (derive_ahead=False), every row; and both leave the same data."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 90, seed=21)
        source = conn.info.dbname
    other = pg_server.create_database(f"{source}_in_sql", template=source)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for name in (source, f"{source}_in_sql"):  # database settings do not come with a template
            conn.execute(f'ALTER DATABASE "{name}" SET track_functions = \'all\'')

    def sql_derivations(dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            row = conn.execute("SELECT calls FROM pg_stat_user_functions WHERE schemaname = 'convkey' "
                               "AND funcname = '_backfill_identities'").fetchone()
            return row[0] if row else 0

    try:
        ahead = run_backfill(db_dsn, execute=True, batch_size=30)
        in_sql = run_backfill(other, execute=True, batch_size=30, derive_ahead=False)
        assert ahead.plan() == in_sql.plan()
        assert ahead.rows_read > 90 and 0 < ahead.unresolvable_count < 10
        assert sql_derivations(db_dsn) == ahead.unresolvable_count
        assert sql_derivations(other) == in_sql.rows_read
        with psycopg.connect(db_dsn, autocommit=True) as a, psycopg.connect(other, autocommit=True) as b:
            assert outcome(a) == outcome(b)
    finally:
        pg_server.drop_database(f"{source}_in_sql")


def test_business_id_touches_only_that_business(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 40, business_id=1, broken=0)
        generate(conn, 40, business_id=2, broken=0)
        other = conn.execute("SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM convkey.whatsapp_conversation c "
                             "WHERE business_id = 1").fetchone()[0]
    run_backfill(db_dsn, execute=True, business_id=2)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM convkey.whatsapp_conversation c "
                            "WHERE business_id = 1").fetchone()[0] == other
        assert conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE business_id = 2 "
                            "AND canonical_key IS NULL AND merged_into_id IS NULL").fetchone()[0] == 0


def _final_state(conn):
    return (
        sorted(conn.execute("SELECT id, canonical_key, merged_into_id FROM convkey.whatsapp_conversation").fetchall()),
        sorted(conn.execute("SELECT provider_message_id, conversation_id FROM convkey.whatsapp_message").fetchall()),
        sorted(conn.execute("SELECT kind, value, conversation_id FROM convkey.identity").fetchall()),
    )


def test_killed_runner_resumes_to_the_uninterrupted_result(pg_server, template_dsn):
    dsns = [pg_server.create_database(f"convkey_resume_{os.getpid()}_{i}", template="convkey_template")
            for i in range(2)]
    try:
        for dsn in dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                legacy = generate(conn, 300, seed=5)
        run_backfill(dsns[0], execute=True, batch_size=20)
        # kill -9 the runner once the resolve cursor has moved, then run again (twice more, to be sure)
        proc = subprocess.Popen([sys.executable, "-m", "convkey", "backfill", "--dsn", dsns[1], "--execute",
                                 "--batch-size", "5", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with psycopg.connect(dsns[1], autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = conn.execute("SELECT last_id FROM convkey.backfill_cursor WHERE phase = 'resolve'").fetchone()
                if row and row[0] > 0:
                    break
                time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with psycopg.connect(dsns[1], autocommit=True) as conn:
            partial = conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE canonical_key IS NULL "
                                   "AND merged_into_id IS NULL").fetchone()[0]
            assert partial > legacy.unresolvable_rows  # really interrupted
            resumed_from = conn.execute("SELECT finished_at FROM convkey.backfill_cursor WHERE phase = 'resolve'"
                                        ).fetchone()[0]
            assert resumed_from is None
        run_backfill(dsns[1], execute=True, batch_size=20)
        with psycopg.connect(dsns[0], autocommit=True) as a, psycopg.connect(dsns[1], autocommit=True) as b:
            assert _final_state(a) == _final_state(b)
            check_one_conversation_per_person(b, legacy)
    finally:
        for dsn in dsns:
            pg_server.drop_database(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


@pytest.mark.parametrize("workers", [1, 2])
def test_terminated_backend_mid_merge_then_rerun_finishes(db_dsn, workers):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        legacy = generate(conn, 500, seed=9, broken=0)
    stop = threading.Event()

    def killer():
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            while not stop.is_set():
                n = conn.execute("SELECT count(*) FROM convkey.conversation_merge").fetchone()[0]
                if n >= 3:
                    # the runner's connection, or with workers the merge lanes' (convkey-backfill-merge-k)
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name LIKE %s",
                                 ("convkey-backfill" if workers == 1 else "convkey-backfill-merge-%",))
                    return
                time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    try:
        with pytest.raises(psycopg.OperationalError):
            run_backfill(db_dsn, execute=True, batch_size=10, workers=workers)
    finally:
        stop.set()
        t.join()
    run_backfill(db_dsn, execute=True, batch_size=10, workers=workers)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)


@pytest.mark.parametrize("workers", [1, 2])
def test_webhooks_during_backfill_never_fail_nor_duplicate(db_dsn, workers):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        legacy = generate(conn, 200, seed=11, broken=0)
    errors, stop = [], threading.Event()
    sent: dict[str, int] = {}

    def webhook(worker):
        i = 0
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                while not stop.is_set():
                    k = (worker * 7919 + i * 104729) % legacy.people
                    # international forms only (a webhook gets JIDs; national formats are the runner's job)
                    wa = forms(k)[(0, 1, 2, 4)[i % 4]]
                    pmid = f"live-{worker}-{i}"
                    conn.execute("SELECT * FROM convkey.record_message(1, %s, 'in', %s)", (wa, pmid))
                    sent[pmid] = k
                    i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=webhook, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        report = run_backfill(db_dsn, execute=True, batch_size=15, workers=workers)
        assert report.workers == workers
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert sent
    run_backfill(db_dsn, execute=True)  # anything a webhook deferred
    legacy.truth.update(sent)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)
        live = conn.execute("SELECT count(*) FROM convkey.whatsapp_message WHERE provider_message_id LIKE 'live-%%'"
                            ).fetchone()[0]
        assert live == len(sent)


def test_backfill_keeps_an_unmerged_legacy_row_apart_even_through_its_lead(db_dsn):
    """A legacy row with a lead and a phone, merged by the backfill into a more recent conversation
    of that phone: the lead (unowned until then) attached to the survivor. Undone, the row comes
    back unresolved with its legacy lead_id and phone_e164 while the survivor keeps the lead. The
    resolver would join a lead's owner without asking about separations; the backfill must not:
    the row stays unresolved, listed with the reason, and a 'separated' conflict is counted."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        a = conn.execute("SELECT conversation_id FROM convkey.record_message(1, '972520000001@s.whatsapp.net', "
                         "'in', 'm1', 'x', p_sent_at => '2026-03-01 12:00+00')").fetchone()[0]
        row = conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, lead_id, phone_e164, "
                           "last_message_at) VALUES (1, 10, '+972520000001', '2026-03-01 10:00+00') "
                           "RETURNING id").fetchone()[0]
        run_backfill(db_dsn, execute=True)
        merge_id = conn.execute("SELECT id FROM convkey.conversation_merge WHERE primary_id = %s "
                                "AND duplicate_id = %s", (a, row)).fetchone()[0]
        conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,))
        state = "SELECT canonical_key, lead_id, phone_e164, merged_into_id FROM convkey.whatsapp_conversation WHERE id = %s"
        assert conn.execute(state, (row,)).fetchone() == (None, 10, "+972520000001", None)
        assert conn.execute(state, (a,)).fetchone() == ("lead:1:10", 10, "+972520000001", None)
        before = data_checksums(conn)

        report = run_backfill(db_dsn, execute=True)
        assert report.merge == {"conflict": 1} and not report.groups
        assert [(u["conversation_id"], u["reason"]) for u in report.unresolvable] == [
            (row, "its lead belongs to a conversation an unmerge separated it from")]
        assert conn.execute("SELECT count(*) FROM convkey.conversation_merge").fetchone()[0] == 1
        assert conn.execute(state, (row,)).fetchone() == (None, 10, "+972520000001", None)
        assert conn.execute("SELECT kind, value, other_conversation_id, owner_conversation_id, rule, seen_count "
                            "FROM convkey.identity_conflict").fetchall() == [("lead", "10", row, a, "separated", 1)]
        changed = {k for k, v in data_checksums(conn).items() if before[k] != v}
        assert changed == {"identity_conflict", "backfill_row"}


def test_a_resolve_batch_leaves_the_sessions_plan_cache_mode_as_it_was(db_conn):
    """The claim statement is planned per batch (EXECUTE), without touching the caller's plan_cache_mode."""
    cid = db_conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) "
                          "VALUES (1, '972520000001@s.whatsapp.net') RETURNING id").fetchone()[0]
    with db_conn.transaction():
        db_conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        done = db_conn.execute("SELECT convkey._backfill_resolve_batch(1, ARRAY[1]::bigint[], ARRAY[%s]::bigint[], "
                               "ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[])", (cid,)).fetchone()[0]
        assert done["read"] == 1 and done["resolved"] == {"phone": 1}
        assert db_conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_generic_plan"


def test_identities_derived_ahead_are_used_only_for_rows_still_as_derived(db_conn):
    """A resolve batch takes the runner's identities for a row only when the row still has the
    lead_id and customer_wa_id they came from, and the element is that row's; otherwise it
    derives the row again."""
    wa = ["972520000001@s.whatsapp.net", "972520000002@s.whatsapp.net", "972520000003@s.whatsapp.net"]
    ids = [r[0] for r in db_conn.execute(
        "INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) "
        "SELECT 1, unnest(%s::text[]) RETURNING id", (wa,)).fetchall()]
    nulls = [None] * 3
    derived = [(1, i, *derive_identities(1, None, w, None, None, None)) for i, w in zip(ids, wa)]
    assert derived[0][2:] == (["phone"], ["+972520000001"])
    # after the derivation: the first row gets a lead, the second another JID
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET lead_id = 77 WHERE id = %s", (ids[0],))
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET customer_wa_id = '972520000009@s.whatsapp.net' "
                    "WHERE id = %s", (ids[1],))
    # and the third row's element is handed over in the wrong place (misaligned arrays)
    derived[2] = (1, ids[0], ["phone"], ["+972520000008"])
    done = db_conn.execute("SELECT convkey._backfill_resolve_batch(1, %s, %s, %s::text[], %s::text[], %s::text[], "
                           "%s::text, %s::bigint[], %s::text[])",
                           ([1] * 3, ids, nulls, nulls, nulls, candidates_literal(derived), nulls, wa)).fetchone()[0]
    assert done["read"] == 3 and done["resolved"] == {"lead": 1, "phone": 2}
    keys = dict(db_conn.execute("SELECT id, canonical_key FROM convkey.whatsapp_conversation WHERE id = ANY(%s)",
                                (ids,)).fetchall())
    assert keys == {ids[0]: "lead:1:77", ids[1]: "phone:1:+972520000009", ids[2]: "phone:1:+972520000003"}


# The state a backfill leaves, without what differs between two runs of the same work: the clock
# (updated_at, created_at, merged_at) and the audit rows' ids (the set-based path writes its
# merges before the per-row ones of the same chunk).
OUTCOME = {
    "conversations": "SELECT to_jsonb(c) - 'updated_at' FROM convkey.whatsapp_conversation c",
    "messages": "SELECT jsonb_build_array(m.id, m.conversation_id) FROM convkey.whatsapp_message m",
    "identities": "SELECT to_jsonb(i) - 'created_at' - 'updated_at' FROM convkey.identity i",
    "merges": "SELECT to_jsonb(m) - 'id' - 'merged_at' || jsonb_build_object("
              "'primary_before', m.primary_before - 'updated_at', 'duplicate_before', m.duplicate_before - 'updated_at', "
              "'primary_after', m.primary_after - 'updated_at') FROM convkey.conversation_merge m",
    "conflicts": "SELECT to_jsonb(x) - 'id' - 'created_at' - 'updated_at' - 'first_seen_at' - 'last_seen_at' "
                 "FROM convkey.identity_conflict x",
    "staged": "SELECT to_jsonb(r) - 'updated_at' FROM convkey.backfill_row r",
}


def outcome(conn) -> dict[str, list[str]]:
    return {name: sorted(row[0] for row in conn.execute(f"SELECT x::text FROM ({sql}) AS t(x)").fetchall())
            for name, sql in OUTCOME.items()}


def test_set_based_merge_equals_the_per_row_resolver(db_dsn, pg_server):
    """The merge phase's set-based path (plain cases, independent within a chunk) leaves exactly the
    state the per-row resolver leaves: same survivors, keys, leads, phones, messages, identities,
    audit rows (snapshots included), conflicts and unresolvable rows. The reference also derives
    every row's identities inside its resolve batch (SQL) instead of in the runner."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 600, seed=11)
        generate(conn, 150, business_id=2, seed=12)
        # one phone under two leads (never merged), and a row sharing a lead with another's phone
        conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id, lead_id, last_message_at) "
                     "VALUES (1, '972529990001@s.whatsapp.net', 999001, now()), (1, '+972529990001', 999002, now()), "
                     "(1, '972529990002@s.whatsapp.net', 999003, NULL), (1, '+972529990003', 999003, now())")
        source = conn.info.dbname
    reference = pg_server.create_database(f"{source}_per_row", template=source)
    try:
        fast = run_backfill(db_dsn, execute=True, batch_size=97)
        slow = run_backfill(reference, execute=True, batch_size=97, simple_merge=False, derive_ahead=False)
        assert {**fast.plan(), "merge_set_based": 0} == slow.plan()
        with psycopg.connect(db_dsn, autocommit=True) as a, psycopg.connect(reference, autocommit=True) as b:
            got, want = outcome(a), outcome(b)
            for name in OUTCOME:
                assert got[name] == want[name], name
        # most rows took the set-based path, and the rest still went row by row
        assert fast.set_based > 30 and sum(fast.merge.values()) > fast.set_based
        assert slow.set_based == 0
    finally:
        pg_server.drop_database(f"{source}_per_row")


def _grouped_state(conn) -> dict[str, list]:
    """What a backfill leaves, independent of the order of its merges: each conversation's live
    conversation (its root), the live ones' key, lead and phone, each message's and identity's
    live conversation, the rows left unresolved."""
    roots = """WITH RECURSIVE r AS (
                   SELECT business_id, id, id AS root FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL
                   UNION ALL
                   SELECT c.business_id, c.id, r.root FROM convkey.whatsapp_conversation c
                     JOIN r ON c.business_id = r.business_id AND c.merged_into_id = r.id)"""
    queries = {
        "roots": roots + " SELECT business_id, id, root FROM r",
        "live": "SELECT business_id, id, canonical_key, lead_id, phone_e164 FROM convkey.whatsapp_conversation "
                "WHERE merged_into_id IS NULL",
        "messages": "SELECT business_id, provider_message_id, conversation_id FROM convkey.whatsapp_message",
        "identities": "SELECT business_id, kind, value, conversation_id, pending_person_id IS NULL "
                      "FROM convkey.identity",
        "unresolved": "SELECT business_id, conversation_id, status FROM convkey.backfill_row",
        "messages_in_tombstones": "SELECT count(*) FROM convkey.whatsapp_message m JOIN convkey.whatsapp_conversation c "
                                  "ON c.business_id = m.business_id AND c.id = m.conversation_id "
                                  "WHERE c.merged_into_id IS NOT NULL",
    }
    return {name: sorted(conn.execute(sql).fetchall()) for name, sql in queries.items()}


def test_parallel_merge_leaves_what_the_serial_merge_leaves(db_dsn, pg_server):
    """--workers 2: the resolve batches and the lanes' set-based chunks run side by side under
    shared backfill locks and try-locks, and leave the same people in the same conversations, with the same keys, leads,
    phones, messages and identity owners as the serial merge (data without rows a rule decides
    between); a dry run always merges on one connection."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        legacy = generate(conn, 900, seed=31)
        generate(conn, 200, business_id=2, seed=32)
        source = conn.info.dbname
    serial = pg_server.create_database(f"{source}_serial", template=source)
    try:
        dry = run_backfill(db_dsn, batch_size=50, workers=2)
        assert dry.workers == 1
        fast = run_backfill(db_dsn, execute=True, batch_size=50, workers=2)
        slow = run_backfill(serial, execute=True, batch_size=50)
        assert fast.workers == 2 and slow.workers == 1
        assert dry.plan() == slow.plan()
        with psycopg.connect(db_dsn, autocommit=True) as a, psycopg.connect(serial, autocommit=True) as b:
            got, want = _grouped_state(a), _grouped_state(b)
            for name in want:
                assert got[name] == want[name], name
            assert got["messages_in_tombstones"] == [(0,)]
            check_one_conversation_per_person(a, legacy)
        # every waiting row had one outcome, most of them set-based in the lanes
        assert fast.deferred == slow.deferred > 50
        assert fast.set_based > fast.deferred // 2
        assert sum(fast.merge.values()) == fast.deferred
        again = run_backfill(db_dsn, execute=True, workers=2)  # idempotent
        assert again.deferred == 0 and again.merge == {}
    finally:
        pg_server.drop_database(f"{source}_serial")


def test_a_lane_locks_what_it_claims_and_skips_what_others_hold(db_dsn):
    """convkey._backfill_merge_simple with p_shared: a candidate whose identity another transaction
    holds the advisory lock of (a webhook's resolver, another lane) is returned with the rest, and
    the others are merged; the backfill lock is taken shared, so two lanes never wait on each other."""
    conn = psycopg.connect(db_dsn, autocommit=True)
    legacy = generate(conn, 60, seed=41, broken=0)
    run_backfill(db_dsn, execute=True, skip_merge=True)
    rows = conn.execute("SELECT business_id, conversation_id, kinds, vals FROM convkey.backfill_row "
                        "WHERE status = 'deferred' ORDER BY 1, 2").fetchall()
    assert len(rows) >= 3
    held_b, held_id, kinds, vals = rows[0]
    other = psycopg.connect(db_dsn, autocommit=False)
    try:
        # another writer: the backfill lock shared (as convkey._lock_identities) and one identity of the first row
        other.execute("SELECT convkey._lock_identities(%s, %s, %s)", (held_b, kinds[:1], vals[:1]))
        got = conn.execute("SELECT * FROM convkey._backfill_merge_simple(%s, %s, true)",
                           ([r[0] for r in rows], [r[1] for r in rows])).fetchone()
        merged, resolved, rest_b, rest_ids = got
        assert held_id in rest_ids
        assert merged + resolved >= 1
        # exclusively, as the serial merge takes it, the same call would have to wait for the other writer
        conn.execute("SET lock_timeout = '100ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("SELECT * FROM convkey._backfill_merge_simple(%s, %s)", (rest_b, rest_ids))
        conn.execute("RESET lock_timeout")
    finally:
        other.rollback()
        other.close()
    run_backfill(db_dsn, execute=True, workers=2)
    check_one_conversation_per_person(conn, legacy)
    conn.close()


def test_a_shared_resolve_batch_defers_what_another_writer_holds(db_dsn):
    """convkey._backfill_resolve_batch with p_shared (a worker of a parallel resolve phase): a row
    one of whose identities another transaction holds the advisory lock of (a webhook's resolver,
    another worker's batch) is deferred, and the other rows claim theirs; the backfill lock is
    taken shared, so the batch does not wait. The cursor moves to p_cursor_*, not past the batch."""
    conn = psycopg.connect(db_dsn, autocommit=True)
    wa = [f"97252000000{i}@s.whatsapp.net" for i in (1, 2, 3)]
    ids = [r[0] for r in conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) "
                                      "SELECT 1, unnest(%s::text[]) RETURNING id", (wa,)).fetchall()]
    call = ("SELECT convkey._backfill_resolve_batch(0, %s, %s, %s::text[], %s::text[], %s::text[], NULL, NULL, NULL, "
            "%s, %s, %s)")
    other = psycopg.connect(db_dsn, autocommit=False)
    try:
        other.execute("SELECT convkey._lock_identities(1, ARRAY['phone'], ARRAY['+972520000002'])")
        nulls = [None] * 3
        done = conn.execute(call, ([1] * 3, ids, nulls, nulls, nulls, True, 1, ids[0])).fetchone()[0]
        assert done == {"read": 3, "resolved": {"phone": 2}, "deferred": 1, "unresolvable": 0}
        assert conn.execute("SELECT conversation_id, status FROM convkey.backfill_row").fetchall() == [
            (ids[1], "deferred")]
        assert conn.execute("SELECT count(*) FROM convkey.identity").fetchone()[0] == 2
        assert conn.execute("SELECT last_business_id, last_id FROM convkey.backfill_cursor "
                            "WHERE business_id = 0 AND phase = 'resolve'").fetchone() == (1, ids[0])
        # exclusively, as one worker takes it, the batch would have to wait for the other writer
        conn.execute("SET lock_timeout = '100ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(call, ([1], ids[1:2], [None], [None], [None], False, None, None))
        conn.execute("RESET lock_timeout")
    finally:
        other.rollback()
        other.close()
    # the rerun resumes from that cursor and resolves the row once its identity is free
    report = run_backfill(db_dsn, execute=True, workers=2)
    assert report.resolved == {"phone": 1} and report.deferred == 0
    assert conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE canonical_key IS NULL"
                        ).fetchone()[0] == 0
    conn.close()


def test_parallel_batches_fit_the_servers_lock_table(db_dsn):
    """The workers' batches and chunks hold advisory locks until they commit: together at most half
    as many rows as the server's shared lock table has slots (max_locks_per_transaction per
    connection and prepared transaction), so a small server gets smaller batches instead of
    SQLSTATE 53200; a default one keeps the sizes the bench measured."""
    with psycopg.connect(db_dsn, autocommit=True, row_factory=dict_row) as conn:
        want = conn.execute("SELECT current_setting('max_locks_per_transaction')::int * "
                            "(current_setting('max_connections')::int "
                            "+ current_setting('max_prepared_transactions')::int) AS n").fetchone()["n"]
        job = Backfill(conn, execute=True, business_id=None, batch_size=10000, region="IL", do_resolve=True,
                       do_merge=True, progress=Progress(enabled=False), workers=2)
        assert job.lock_table() == want
    assert lane_rows(2, 64 * 100, LANE_ROWS // 2) == 1500  # the default server: resolve batches as measured
    assert lane_rows(2, 64 * 100, MERGE_CHUNK) == 1000  # and merge chunks
    assert lane_rows(2, 64 * 6, 1500) == 96  # max_connections = 6
    assert lane_rows(4, 64 * 6, 1500) * 4 * 2 <= 64 * 6
    assert lane_rows(8, 1, 1500) == 1  # never nothing


def test_the_lane_feed_hands_each_waiting_row_out_once_and_holds_few(db_dsn):
    """The parallel merge phase's feed reads each waiting row's lane once for all lanes: a lane
    gets its own rows in id order; while another lane lags, the feed reads no further than
    _LaneFeed.AHEAD chunks ahead of it, and a lane whose rows ran out takes the far end of the
    lagging lane's queue; every row is handed out exactly once."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 600, seed=43)
    run_backfill(db_dsn, execute=True, skip_merge=True)
    with psycopg.connect(db_dsn, autocommit=True, row_factory=dict_row) as conn:
        waiting = [(r["business_id"], r["id"]) for r in conn.execute(
            "SELECT business_id, conversation_id AS id FROM convkey.backfill_row WHERE status = 'deferred' "
            "ORDER BY 1, 2")]
        chunk = 5
        assert len(waiting) > 2 * (_LaneFeed.AHEAD + 2) * chunk
        want_lane = {(r["business_id"], r["id"]): r["lane"] for r in conn.execute(
            queries.get("backfill_lane_window"),
            dict(after_business_id=0, after_id=0, business_id=None, lanes=2, limit=len(waiting)))}
        assert set(want_lane.values()) == {0, 1}
        job = Backfill(conn, execute=True, business_id=None, batch_size=10000, region="IL", do_resolve=False,
                       do_merge=True, progress=Progress(enabled=False), workers=2)
        feed = _LaneFeed(job, 2, chunk)
        handed, own, stolen = [], [], []
        while rows := feed.take(0, conn):  # lane 1 never asks: it lags behind from the start
            assert len(rows) <= chunk and max(map(len, feed.queues)) <= (_LaneFeed.AHEAD + 2) * chunk
            keys = [(r["business_id"], r["id"]) for r in rows]
            assert keys == sorted(keys)
            (own if rows[0]["lane"] == 0 else stolen).append(keys)
            handed += keys
        assert [k for keys in own for k in keys] == [k for k in waiting if want_lane[k] == 0]
        assert stolen and all(want_lane[k] == 1 for keys in stolen for k in keys)
        assert stolen[0][0] > stolen[-1][-1]  # from the far end of lane 1's queue, first
        assert feed.take(1, conn) == []
        assert sorted(handed) == waiting  # once each


def test_the_resolve_phase_collects_garbage_less_often_and_restores_the_setting(db_dsn, monkeypatch):
    """The collector's youngest-generation threshold is raised for the resolve batches only, and
    put back as it was, also when the phase fails."""
    seen = []
    real = Backfill._resolve_batches

    def spy(self, after):
        seen.append(gc.get_threshold())
        return real(self, after)

    monkeypatch.setattr(Backfill, "_resolve_batches", spy)
    before = gc.get_threshold()
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 30, seed=44)
    run_backfill(db_dsn, execute=True)
    assert seen == [(convkey.backfill.RESOLVE_GC_EVERY, *before[1:])] and gc.get_threshold() == before

    def failing(self, after):
        raise RuntimeError("batch failed")

    monkeypatch.setattr(Backfill, "_resolve_batches", failing)
    with pytest.raises(RuntimeError):
        run_backfill(db_dsn, execute=True)
    assert gc.get_threshold() == before


def test_workers_must_be_positive(db_dsn):
    res = cli(db_dsn, "--execute", "--workers", "0")
    assert res.returncode == 2 and "workers must be at least 1" in res.stderr


def _has_lz4(conn):
    """Whether the server was built with lz4, read as the runner reads it."""
    return conn.cursor(row_factory=dict_row).execute(queries.get("backfill_wal_compression")).fetchone()["has_lz4"]


def test_every_session_of_a_run_compresses_its_wal_with_lz4_by_default(db_dsn, monkeypatch):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 60)
        want = "lz4" if _has_lz4(conn) else None
        # PostgreSQL's default, whatever the test server's configuration says
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET wal_compression = off')
    # what each connection of the run works with, read on it once the run is done with it
    seen = []
    connect = convkey.backfill._connect

    def recording(dsn, name, **kw):
        conn = connect(dsn, name, **kw)
        close = conn.close
        def close_and_record():
            seen.append((name, conn.execute("SHOW wal_compression").fetchone()["wal_compression"]))
            close()
        conn.close = close_and_record
        return conn
    monkeypatch.setattr(convkey.backfill, "_connect", recording)
    report = run_backfill(db_dsn, execute=True, workers=2)
    assert report.wal_compression == want
    assert report.as_dict()["wal_compression"] == want and "wal_compression" not in report.plan()
    names = {name for name, _ in seen}
    assert {"convkey-backfill", "convkey-backfill-merge-0", "convkey-backfill-merge-1"} <= names, names
    assert {method for _, method in seen} == {want or "off"}
    with psycopg.connect(db_dsn) as conn:  # a session's setting: others keep the server's
        assert conn.execute("SHOW wal_compression").fetchone()[0] == "off"


def test_auto_leaves_a_server_that_compresses_and_a_role_that_may_not(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET wal_compression = pglz')
    with psycopg.connect(db_dsn, autocommit=True, row_factory=dict_row) as conn:
        assert wal_compression_for(conn, "auto") is None  # the server's (here the database's) pglz stays
        assert wal_compression_for(conn, "off") is None
        assert wal_compression_for(conn, "zstd") == "zstd"  # asked for by name
        conn.execute(f'ALTER DATABASE "{dbname}" SET wal_compression = off')  # PostgreSQL's default
    role = f"ck_walc_{os.getpid()}"
    with psycopg.connect(db_dsn, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            conn.execute(f"SET ROLE {role}")
            assert wal_compression_for(conn, "auto") is None  # may not SET it: left alone, no error
            with pytest.raises(psycopg.Error) as exc:
                set_wal_compression(conn, "lz4")
            assert exc.value.sqlstate == "42501"
            conn.execute("RESET ROLE")
            conn.execute(f"GRANT SET ON PARAMETER wal_compression TO {role}")  # what a DBA grants
            conn.execute(f"SET ROLE {role}")
            assert wal_compression_for(conn, "auto") == ("lz4" if _has_lz4(conn) else None)
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"REVOKE SET ON PARAMETER wal_compression FROM {role}")
            conn.execute(f"DROP ROLE {role}")


def test_an_unknown_wal_compression_is_refused_before_anything_is_written(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 30)
        before = data_checksums(conn)
    with pytest.raises(InvalidIdentifier) as exc:
        run_backfill(db_dsn, execute=True, wal_compression="fast")
    assert exc.value.sqlstate == "22023" and "wal_compression" in str(exc.value)
    res = cli(db_dsn, "--execute", "--wal-compression", "fast")
    assert res.returncode == 2 and "wal_compression must be one of auto, off, pglz, lz4, zstd" in res.stderr
    with psycopg.connect(db_dsn) as conn:
        assert data_checksums(conn) == before


ANALYZED = ["convkey.backfill_row", "convkey.identity", "convkey.whatsapp_conversation"]


def _analyzed(conn):
    """The convkey tables an ANALYZE command (not autovacuum) has analyzed, by name."""
    rows = conn.execute("SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables "
                        "WHERE schemaname = 'convkey' AND last_analyze IS NOT NULL ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_the_merge_phase_plans_on_statistics_of_what_the_resolve_phase_wrote(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 80)
        assert _analyzed(conn) == []
    plan = run_backfill(db_dsn)  # a dry run writes nothing, statistics included
    assert plan.deferred > 0
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _analyzed(conn) == []
        assert conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'convkey.backfill_row'::regclass"
                            ).fetchone()[0] <= 0  # never analyzed (-1) or empty
    report = run_backfill(db_dsn, execute=True, skip_merge=True)
    assert report.deferred == plan.deferred and report.merge == {}  # no merge phase: nothing to plan for
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _analyzed(conn) == []
        deferred, staged = conn.execute("SELECT count(*) FILTER (WHERE status = 'deferred'), count(*) "
                                        "FROM convkey.backfill_row").fetchone()
    assert deferred == plan.deferred
    report = run_backfill(db_dsn, execute=True)
    assert report.deferred == deferred
    assert report.analyzed == ANALYZED and report.as_dict()["analyzed"] == ANALYZED
    assert "analyzed" not in report.plan() and plan.analyzed == [] and plan.as_dict()["analyzed"] == []
    text = io.StringIO()
    print_report(report, text)
    assert text.getvalue().splitlines()[-1].endswith(", analyzed " + ", ".join(ANALYZED))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _analyzed(conn) == ANALYZED
        # ANALYZE ran before the merge phase emptied the staging table: it counted every staged row
        assert conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'convkey.backfill_row'::regclass"
                            ).fetchone()[0] == staged


def test_statistics_are_refreshed_only_on_tables_the_role_may_analyze(db_dsn):
    role = f"ck_stats_{os.getpid()}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert [r[0] for r in conn.execute(queries.get("backfill_stale_statistics"))] == ANALYZED
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            conn.execute(f"SET ROLE {role}")
            assert conn.execute(queries.get("backfill_stale_statistics")).fetchall() == []  # owns nothing
            conn.execute("RESET ROLE")
            conn.execute(f"ALTER TABLE convkey.identity OWNER TO {role}")
            conn.execute(f"SET ROLE {role}")
            assert [r[0] for r in conn.execute(queries.get("backfill_stale_statistics"))] == ["convkey.identity"]
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"ALTER TABLE convkey.identity OWNER TO {conn.info.parameter_status('session_authorization')}")
            conn.execute(f"DROP ROLE {role}")


def test_skip_analyze_and_a_locked_table_leave_the_statistics_to_autovacuum(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        generate(conn, 60)
    res = cli(db_dsn, "--execute", "--skip-merge", "--json")
    assert res.returncode in (0, 1), res.stderr
    res = cli(db_dsn, "--execute", "--json", "--skip-analyze")
    assert res.returncode in (0, 1), res.stderr
    report = json.loads(res.stdout)
    assert report["deferred_to_merge"] > 0 and report["analyzed"] == []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _analyzed(conn) == []
        generate(conn, 60, business_id=2, seed=2)  # more rows that wait for a merge phase
    # a session holding a lock ANALYZE needs (as VACUUM or CREATE INDEX CONCURRENTLY do): that
    # table is skipped at once, the others are analyzed and the backfill does its work
    with psycopg.connect(db_dsn) as holder:
        holder.execute("LOCK TABLE convkey.identity IN SHARE UPDATE EXCLUSIVE MODE")
        report = run_backfill(db_dsn, execute=True)
        holder.rollback()
    assert report.deferred > 0
    assert report.analyzed == ["convkey.backfill_row", "convkey.whatsapp_conversation"]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert _analyzed(conn) == report.analyzed
        assert conn.execute("SELECT count(*) FROM convkey.backfill_row WHERE status = 'deferred'").fetchone()[0] == 0

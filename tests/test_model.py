"""Issue 8 part 1: random sequences of API calls against a pure-Python reference model (tests/model.py).

A hypothesis RuleBasedStateMachine drives record_message (every identifier form of a person, with
or without a lead), link_identity, assign_lead, merge_leads, unmerge and the backfill of injected
legacy rows over a small universe (6 people, each a phone, a LID, two leads, sometimes a second
phone) so that identities collide often. After every step the database must agree with the model:
the grouping of identities and messages into live conversations, every key, lead and primary phone,
the merge audit, separations and rule refusals; and, independently of the model, every message is
stored once in a live conversation, every live key is its strongest identity, tombstones resolve
to live conversations and no live key is held twice.

One database per test; each example starts from an emptied package with identities restarting at 1
(what TRUNCATE ... RESTART IDENTITY does, faster), so the model predicts ids too.
Settings: profile "convkey-model-ci" (derandomized, reliability_scale(300, 3000) examples of 30
steps); CONVKEY_HYPOTHESIS_PROFILE=long or --hypothesis-profile=long runs a long random search
(CONVKEY_MODEL_EXAMPLES examples, 20000 by default). Both profiles are registered in conftest.py.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import os
import time

import psycopg
import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from conftest import TEMPLATE
from convkey.backfill import run_backfill
from model import LEAD, LID, PHONE, B, Derived, Model, ModelError, key_of

PEOPLE = 6
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
SECOND = dt.timedelta(seconds=1)



def _settings() -> settings:
    """The profiles are registered in conftest.py, before pytest's --hypothesis-profile loads one."""
    name = os.environ.get("CONVKEY_HYPOTHESIS_PROFILE")
    if not name:
        name = "long" if settings.get_current_profile_name() == "long" else "convkey-model-ci"
    return settings.get_profile(name)


@pytest.fixture
def plain_dsn(pg_server, template_dsn):
    """A fresh clone of the migrated template, always a plain database (also under
    CONVKEY_TEST_PROXY=1): these tests read and write the package tables directly."""
    name = f"convkey_model_{os.getpid()}_{next(_clones)}"
    dsn = pg_server.create_database(name, template=TEMPLATE)
    yield dsn
    pg_server.drop_database(name)


_clones = itertools.count()


# --- the universe -------------------------------------------------------------------------------
def digits(k: int, second: bool = False) -> str:
    return f"9725{3 if second else 2}{k:07d}"


def lid_of(k: int) -> str:
    return str(82399031500000 + k)


def lead_of(k: int, j: int) -> int:
    return 10 + 2 * k + j          # two-digit values: text and numeric order agree


def person_of(ident) -> int:
    kind, value = ident
    if kind == LEAD:
        return (int(value) - 10) // 2
    if kind == PHONE:
        return int(value[-7:])
    return int(value) - 82399031500000


def call_form(k: int, second: bool, form: int, dev: int):
    """(p_customer_wa_id, p_phone_e164, phone identity, lid identity) of one way to name person k."""
    d, lid = digits(k, second), lid_of(k)
    phone = "+" + d
    return [
        (f"{d}@s.whatsapp.net", None, phone, None),
        (f"{d}:{dev}@s.whatsapp.net", None, phone, None),      # a device
        (f"{d}.0:{dev}@s.whatsapp.net", None, phone, None),    # agent and device
        (f"{d}@c.us", None, phone, None),
        (None, phone, phone, None),                             # E.164 only
        (f"{lid}@lid", None, None, lid),
        (f"{lid}:{dev}@lid", None, None, lid),
        (f"{lid}@lid", phone, phone, lid),                      # LID with the phone Baileys revealed
    ][form]


def legacy_wa(k: int, second: bool, form: int):
    """(customer_wa_id, Derived) of a legacy row."""
    d, lid = digits(k, second), lid_of(k)
    phone = "+" + d
    return [
        (f"{d}@s.whatsapp.net", Derived(phone=phone)),
        (f"{d}:{k % 9 + 1}@s.whatsapp.net", Derived(phone=phone)),
        (phone, Derived(phone=phone, human=True)),
        (f"0{d[3:5]}-{d[5:8]}-{d[8:]}", Derived(phone=phone, human=True)),   # 052-000-0001
        (f"{d}@c.us", Derived(phone=phone)),
        (f"{lid}@lid", Derived(lid=lid)),
        (f"{lid}:2@lid", Derived(lid=lid)),
        (None, None),
        (f"{lid}@lid", Derived(lid=lid)),
    ][form]


def legacy_phone(k: int, second: bool, form: int):
    d = digits(k, second)
    return [(None, None), ("+" + d, Derived(phone="+" + d, human=True)),
            (f"+972 {d[3:5]}-{d[5:8]}-{d[8:]}", Derived(phone="+" + d, human=True)), (None, None)][form]


GARBAGE = [("garbage!!", Derived(bad=True)), ("120363000000000000@g.us", Derived(bad=True))]

# people 0-2 come back often (so their identifiers collide), 3-5 now and then
PERSON = st.sampled_from([0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5])

STATS = {"examples": 0, "steps": 0, "calls": {}, "known_bugs": {}, "branches": collections.Counter()}


class ConvkeyMachine(RuleBasedStateMachine):
    conn: psycopg.Connection
    dsn: str
    tables: list[str]
    sequences: list[str]

    def __init__(self):
        super().__init__()
        reset(self.conn, self.tables, self.sequences)
        self.m = Model()
        self.clock = T0
        self.used: set[dt.datetime] = set()
        self.sent: list[tuple] = []          # (wa, phone, lead, pmid, direction, at) of every recorded message
        self.n = 0
        STATS["examples"] += 1

    # --- helpers -------------------------------------------------------------------------------
    def _count(self, what: str) -> None:
        STATS["steps"] += 1
        STATS["calls"][what] = STATS["calls"].get(what, 0) + 1

    def _time(self, late: bool, back: int) -> dt.datetime:
        if not late:
            self.clock += 60 * SECOND
            t = self.clock
        else:
            t = self.clock - back * SECOND
        while t in self.used:
            t -= SECOND
        self.used.add(t)
        return t

    def _pmid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _call(self, expected, sql: str, args: tuple):
        """Run one API call; a predicted ModelError must come back as that SQLSTATE."""
        try:
            row = self.conn.execute(sql, args).fetchone()
        except psycopg.Error as exc:
            if isinstance(expected, ModelError) and exc.sqlstate == expected.sqlstate:
                if expected.known_bug:
                    STATS["known_bugs"][expected.known_bug] = STATS["known_bugs"].get(expected.known_bug, 0) + 1
                return expected
            raise AssertionError(f"database raised {exc.sqlstate} ({exc}); the model expected {expected!r}") from exc
        assert not isinstance(expected, ModelError), f"the model expected {expected}, the database returned {row}"
        return row

    def _predict(self, fn, *args):
        try:
            return fn(*args)
        except ModelError as exc:
            return exc

    # --- rules ---------------------------------------------------------------------------------
    @rule(k=PERSON, second=st.integers(0, 9), form=st.integers(0, 7), dev=st.integers(1, 20),
          lead_j=st.integers(0, 7), out=st.booleans(), late=st.integers(0, 5), back=st.integers(1, 20000))
    def record(self, k, second, form, dev, lead_j, out, late, back):
        wa, phone_arg, phone, lid = call_form(k, second == 0, form, dev)
        # the person's first lead on a quarter of the calls, the second one (a CRM duplicate) on 1/8
        lead = lead_of(k, 0) if lead_j < 2 else lead_of(k, 1) if lead_j == 2 else None
        at = self._time(late == 0, back)
        self._send(wa, phone_arg, lead, self._pmid("m"), "out" if out else "in", at, phone, lid)

    @rule(k=PERSON, second=st.integers(0, 9), lid_form=st.integers(5, 7), dev=st.integers(1, 20),
          lead_j=st.integers(0, 7), late=st.integers(0, 5), back=st.integers(1, 20000))
    def record_lid(self, k, second, lid_form, dev, lead_j, late, back):
        """LID forms (alone or with the phone Baileys revealed) are where the rules bite: weigh them up."""
        self.record(k, second, lid_form, dev, lead_j, False, late, back)

    @rule(k=PERSON, second=st.integers(0, 9), form=st.integers(0, 4), dev=st.integers(1, 20),
          lead_j=st.integers(0, 7), late=st.integers(0, 5), back=st.integers(1, 20000))
    def record_phone(self, k, second, form, dev, lead_j, late, back):
        self.record(k, second, form, dev, lead_j, True, late, back)

    @rule(k=PERSON, second=st.integers(0, 4), lead_j=st.integers(0, 7), late=st.integers(0, 5),
          back=st.integers(1, 20000))
    def record_pair(self, k, second, lead_j, late, back):
        """A LID message with the phone Baileys revealed (remoteJidAlt): the call that joins threads."""
        self.record(k, second, 7, 1, lead_j, False, late, back)

    def _send(self, wa, phone_arg, lead, pmid, direction, at, phone, lid):
        self._count("record_message")
        ids = ([(LEAD, str(lead))] if lead is not None else []) + ([(PHONE, phone)] if phone else []) \
            + ([(LID, lid)] if lid else [])
        if wa is not None:     # how the backfill would read this customer_wa_id alone
            self.m.raw[wa] = Derived(phone=None if "@lid" in wa else phone, lid=lid)
        expected = self.m.record_message(ids, wa, pmid, at)
        got = self._call(expected, "SELECT conversation_id, inserted FROM convkey.record_message(%s, %s, %s, %s, 'x', "
                         "p_lead_id => %s, p_phone_e164 => %s, p_sent_at => %s)",
                         (B, wa, direction, pmid, lead, phone_arg, at))
        assert tuple(got) == expected, f"record_message {pmid} {wa} {phone_arg} {lead}: db {got}, model {expected}"
        if expected[1]:
            self.sent.append((wa, phone_arg, lead, pmid, direction, at, phone, lid))

    @precondition(lambda self: self.sent)
    @rule(i=st.integers(0, 10**6))
    def retry(self, i):
        """A retried delivery: the same provider message id again, nothing changes."""
        wa, phone_arg, lead, pmid, direction, at, phone, lid = self.sent[i % len(self.sent)]
        self._send(wa, phone_arg, lead, pmid, direction, at, phone, lid)

    @rule(k=PERSON, k2=PERSON, cross=st.integers(0, 4),
          second=st.integers(0, 4), kind=st.integers(0, 9), lid_form=st.booleans(), phone_form=st.integers(0, 2),
          manual=st.integers(0, 7), swap=st.booleans())
    def link(self, k, k2, cross, second, kind, lid_form, phone_form, manual, swap):
        self._count("link_identity")
        source = "manual" if manual == 0 else "lid-mapping"

        def phone_side(p, sec):
            d = digits(p, sec)
            return [f"{d}@s.whatsapp.net", "+" + d, f"{d}:4@s.whatsapp.net"][phone_form], (PHONE, "+" + d)
        if kind == 0:   # the person's two phones
            a, ia = phone_side(k, False)
            b, ib = phone_side(k, True)
        else:
            lid = lid_of(k)
            a, ia = (f"{lid}@lid" if lid_form else f"{lid}:7@lid"), (LID, lid)
            b, ib = phone_side(k if cross else k2, second == 0)
        if swap:
            a, b, ia, ib = b, a, ib, ia
        expected = self._predict(self.m.link_identity, ia, ib, source)
        got = self._call(expected, "SELECT convkey.link_identity(%s, %s, %s, %s)", (B, a, b, source))
        if not isinstance(expected, ModelError):
            assert got[0] == expected, f"link {a} {b} {source}: db {got[0]}, model {expected}"

    @rule(k=PERSON, second=st.integers(0, 4), lid_form=st.booleans(), phone_form=st.integers(0, 2),
          swap=st.booleans())
    def link_own(self, k, second, lid_form, phone_form, swap):
        """The person's own LID and phone (lid-mapping.update), the common case."""
        self.link(k, k, 1, second, 1, lid_form, phone_form, 1, swap)

    def _assignable(self) -> list[int]:
        return sorted(c for c in self.m.convs if self.m.convs[self.m.live(c)].key is not None)

    @precondition(lambda self: self._assignable())
    @rule(i=st.integers(0, 10**6), k=PERSON, j=st.integers(0, 1), own=st.integers(0, 4))
    def assign(self, i, k, j, own):
        self._count("assign_lead")
        cands = self._assignable()
        cid = cands[i % len(cands)]
        people = sorted({person_of(x) for x in self.m.owned(self.m.live(cid))})
        if own and people:
            k = people[i % len(people)]
        lead = lead_of(k, j)
        expected = self._predict(self.m.assign_lead, cid, lead)
        got = self._call(expected, "SELECT convkey.assign_lead(%s, %s, %s)", (B, cid, lead))
        if not isinstance(expected, ModelError):
            assert got[0] == expected, f"assign_lead {cid} {lead}: db {got[0]}, model {expected}"

    @rule(k=PERSON, k2=PERSON, cross=st.integers(0, 4), j=st.integers(0, 1),
          j2=st.integers(0, 1))
    def merge_leads(self, k, k2, cross, j, j2):
        frm = lead_of(k, j)
        into = lead_of(k, 1 - j) if cross else lead_of(k2, j2)
        gone = {int(i[1]) for i, s in self.m.source.items() if i[0] == LEAD and s == "merge_leads"}
        if frm == into or frm in gone or into in gone:
            return      # the CRM merges live leads only
        self._count("merge_leads")
        expected = self._predict(self.m.merge_leads, frm, into)
        got = self._call(expected, "SELECT convkey.merge_leads(%s, %s, %s)", (B, frm, into))
        if not isinstance(expected, ModelError):
            assert got[0] == expected, f"merge_leads {frm} {into}: db {got[0]}, model {expected}"

    @precondition(lambda self: any(not x.undone for x in self.m.merges.values()))
    @rule(i=st.integers(0, 10**6))
    def unmerge(self, i):
        self._count("unmerge")
        cands = sorted(x.id for x in self.m.merges.values() if not x.undone)
        mid = cands[i % len(cands)]
        expected = self._predict(self.m.unmerge, mid)
        got = self._call(expected, "SELECT convkey.unmerge(%s, %s)", (B, mid))
        if not isinstance(expected, ModelError):
            assert got[0] == expected, f"unmerge {mid}: db {got[0]}, model {expected}"

    @rule(rows=st.lists(st.tuples(PERSON, st.integers(0, 9), st.integers(0, 8), st.integers(0, 4),
                                  st.integers(0, 3), st.integers(0, 2), st.integers(0, 4), st.integers(1, 50000)),
                        min_size=1, max_size=3),
          garbage=st.integers(0, 19), run=st.booleans())
    def legacy(self, rows, garbage, run):
        """Legacy rows inserted unresolved (canonical_key NULL), as tests/legacy.py does, then (half of
        the time; else at a later legacy step) convkey backfill --execute over every unresolved row.
        Rows left unresolved meanwhile meet webhooks and graph calls, as in an online backfill."""
        self._count("inject_legacy")
        specs = []
        for k, second, wa_form, lead_j, phone_form, n_msgs, last_mode, back in rows:
            wa, wa_d = legacy_wa(k, second == 0, wa_form)
            phone, phone_d = legacy_phone(k, second == 0, phone_form)
            lead = lead_of(k, lead_j) if lead_j < 2 else None
            if wa is None and phone is None and lead is None:
                wa, wa_d = legacy_wa(k, second == 0, 0)
            specs.append((wa, wa_d, phone, phone_d, lead, n_msgs, last_mode, back))
        if garbage == 0:
            wa, wa_d = GARBAGE[len(rows) % 2]
            specs.append((wa, wa_d, None, None, None, 1, 1, 7))
        for wa, wa_d, phone, phone_d, lead, n_msgs, last_mode, back in specs:
            for raw, d in ((wa, wa_d), (phone, phone_d)):
                if raw is not None:
                    self.m.raw[raw] = d
            msgs = {self._pmid("L"): self._time(True, back + 1000 * j) for j in range(n_msgs)}
            last_at = None if last_mode == 0 else (max(msgs.values()) if msgs else self._time(True, back))
            cid = self.m.insert_legacy(wa, lead, phone, last_at, msgs)
            got = self.conn.execute(
                "INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id, lead_id, phone_e164, "
                "last_message_at) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (B, wa, lead, phone, last_at)).fetchone()[0]
            assert got == cid, f"legacy row got id {got}, the model expected {cid}"
            for n, (pmid, at) in enumerate(msgs.items()):
                self.conn.execute("INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction, "
                                  "provider_message_id, sent_at) VALUES (%s, %s, %s, %s, %s)",
                                  (B, cid, ["inbound", "out"][n % 2], pmid, at))
        if run:
            self.backfill()

    def backfill(self):
        self._count("backfill")
        first = self.m.next_merge
        expected = self.m.backfill()
        report = run_backfill(self.dsn, execute=True)
        self.m.renumber_merges(first, {(p, d): i for i, p, d in self.conn.execute(
            "SELECT id, primary_id, duplicate_id FROM convkey.conversation_merge WHERE id >= %s", (first,))})
        assert report.deferred == expected["deferred"], (report.as_dict(), expected)
        assert sum(report.resolved.values()) == expected["claimed"], (report.as_dict(), expected)
        assert len(report.unresolvable) == expected["unresolvable_after"], (report.as_dict(), expected)

    def teardown(self):
        STATS["branches"].update(self.m.hits)

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def database_agrees_with_model(self):
        try:
            check(self.conn, self.m)
        except AssertionError:
            note("model conversations:\n" + "\n".join(
                f"  {c} owns {sorted(self.m.owned(c.id))}" for c in self.m.convs.values()))
            merges = [(x.id, x.primary, x.duplicate, x.reason, x.undone) for x in self.m.merges.values()]
            note(f"model merges: {merges}")
            note(f"model pending persons: {self.m.pending_groups()}; separations: {self.m.separations}")
            raise


def package_relations(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Every table and sequence of the convkey schema (other issues may add some)."""
    rows = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p', 'S') "
        "ORDER BY 1").fetchall()
    return [r for r, k in rows if k != "S"], [r for r, k in rows if k == "S"]


def reset(conn: psycopg.Connection, tables: list[str], sequences: list[str]) -> None:
    """An empty package with identities restarting at 1: what TRUNCATE ... RESTART IDENTITY CASCADE does,
    about ten times faster on tables this small (DELETE with foreign-key triggers off, then setval)."""
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for t in tables:
            conn.execute(f"DELETE FROM {t}")
        for seq in sequences:
            conn.execute("SELECT setval(%s::regclass, 1, false)", (seq,))


STATE_SQL = """
SELECT json_build_object(
  'convs', (SELECT coalesce(json_agg(json_build_array(id, canonical_key, lead_id, phone_e164, merged_into_id,
                                                      last_message_at, customer_wa_id)), '[]')
              FROM convkey.whatsapp_conversation),
  'identities', (SELECT coalesce(json_agg(json_build_array(kind, value, conversation_id, pending_person_id,
                                                           source)), '[]') FROM convkey.identity),
  'messages', (SELECT coalesce(json_agg(json_build_array(provider_message_id, conversation_id)), '[]')
                 FROM convkey.whatsapp_message),
  'merges', (SELECT coalesce(json_agg(json_build_array(id, primary_id, duplicate_id, reason,
                                                       undone_at IS NOT NULL)), '[]') FROM convkey.conversation_merge),
  'separations', (SELECT coalesce(json_agg(json_build_array(low_id, high_id)), '[]')
                    FROM convkey.conversation_separation),
  'conflicts', (SELECT coalesce(json_agg(json_build_array(kind, value, other_conversation_id, owner_conversation_id,
                                                          rule, seen_count)), '[]') FROM convkey.identity_conflict),
  'resolved', (SELECT coalesce(json_agg(json_build_array(id, convkey.resolve_conversation_id(business_id, id))), '[]')
                 FROM convkey.whatsapp_conversation WHERE merged_into_id IS NOT NULL))
"""


def db_state(conn: psycopg.Connection) -> dict:
    """The whole package state in one round trip."""
    s = conn.execute(STATE_SQL).fetchone()[0]
    ts = lambda v: None if v is None else dt.datetime.fromisoformat(v)  # noqa: E731
    return {
        "convs": {r[0]: (r[1], r[2], r[3], r[4], ts(r[5]), r[6]) for r in s["convs"]},
        "identities": [tuple(r) for r in s["identities"]],
        "messages": [tuple(r) for r in s["messages"]],
        "merges": {r[0]: tuple(r[1:]) for r in s["merges"]},
        "separations": {frozenset(r) for r in s["separations"]},
        "conflicts": {tuple(r[:3]): r[3:] for r in s["conflicts"]},
        "resolved": dict(map(tuple, s["resolved"])),
    }


def check(conn: psycopg.Connection, m: Model) -> None:
    s = db_state(conn)
    convs = s["convs"]
    live = {c for c, r in convs.items() if r[3] is None}

    # -- what must hold whatever the model says --
    pmids = [p for p, _ in s["messages"]]
    assert len(pmids) == len(set(pmids)), "a provider message id is stored twice"
    assert set(pmids) == set(m.msg_conv), f"messages lost or invented: {set(m.msg_conv) ^ set(pmids)}"
    assert all(c in live for _, c in s["messages"]), "a message sits in a tombstone"
    keys = [convs[c][0] for c in live if convs[c][0] is not None]
    assert len(keys) == len(set(keys)), f"a live key is held twice: {sorted(keys)}"
    owned: dict[int, set] = {c: set() for c in live}
    for kind, value, cid, pid, _ in s["identities"]:
        assert (cid is None) != (pid is None)
        if cid is not None:
            assert cid in live, f"identity {kind}:{value} is owned by tombstone {cid}"
            owned[cid].add((kind, value))
    for cid in live:
        key, lead, phone = convs[cid][:3]
        ids = owned[cid]
        if any(k == LEAD for k, _ in ids):
            assert lead is not None and (LEAD, str(lead)) in ids and key == key_of(LEAD, str(lead)), (cid, key, ids)
        elif any(k == PHONE for k, _ in ids):
            assert phone is not None and (PHONE, phone) in ids and key == key_of(PHONE, phone), (cid, key, ids)
        elif ids:
            assert key in {key_of(*i) for i in ids}, (cid, key, ids)
        else:
            assert key is None, (cid, key)
    for tomb, target in s["resolved"].items():
        assert target in live, f"tombstone {tomb} resolves to {target}, not a live conversation"
        assert target == m.live(tomb), f"tombstone {tomb} resolves to {target}, the model says {m.live(tomb)}"

    # -- groupings: identities and messages per live conversation, pending persons --
    db_groups = {frozenset(v) for v in owned.values() if v}
    model_groups = {g for g in m.groups().values() if g}
    assert db_groups == model_groups, (
        f"identity groupings differ:\n  db only    {sorted(map(sorted, db_groups - model_groups))}\n"
        f"  model only {sorted(map(sorted, model_groups - db_groups))}")
    by_conv: dict[int, set] = {}
    for p, c in s["messages"]:
        by_conv.setdefault(c, set()).add(p)
    model_by_conv: dict[int, set] = {}
    for p, c in m.msg_conv.items():
        model_by_conv.setdefault(c, set()).add(p)
    db_msg_groups = {frozenset(v) for v in by_conv.values()}
    model_msg_groups = {frozenset(v) for v in model_by_conv.values()}
    assert db_msg_groups == model_msg_groups, (
        f"message groupings differ:\n  db only    {sorted(map(sorted, db_msg_groups - model_msg_groups))}\n"
        f"  model only {sorted(map(sorted, model_msg_groups - db_msg_groups))}")
    pending: dict[int, set] = {}
    for kind, value, cid, pid, _ in s["identities"]:
        if pid is not None:
            pending.setdefault(pid, set()).add((kind, value))
    assert {frozenset(v) for v in pending.values()} == m.pending_groups(), "pending persons differ"

    # -- exact: ids, keys, leads, primary phones, activity, audit, separations, refusals --
    for cid, c in m.convs.items():
        key, lead, phone, merged, last_at, wa = convs[cid]
        assert (key, lead, phone, merged, last_at) == (c.key, c.lead, c.phone, c.merged_into, c.last_at), (
            f"conversation {cid}: db {(key, lead, phone, merged, last_at)}, "
            f"model {(c.key, c.lead, c.phone, c.merged_into, c.last_at)}")
        if c.live and c.key is None:
            assert wa == c.wa, f"unresolved conversation {cid}: customer_wa_id db {wa}, model {c.wa}"
    assert set(convs) == set(m.convs)
    assert {(k, v): c for k, v, c, _, _ in s["identities"] if c is not None} == m.conv_of
    assert {(k, v): src for k, v, _, _, src in s["identities"]} == m.source
    assert {c: set(p) for c, p in by_conv.items()} == model_by_conv
    assert s["merges"] == {i: (x.primary, x.duplicate, x.reason, x.undone) for i, x in m.merges.items()}
    assert s["separations"] == m.separations
    assert s["conflicts"] == {k: list(v) for k, v in m.conflicts.items()}


@pytest.mark.reliability
def test_model_agrees_with_database(plain_dsn, reliability_record):
    conf = _settings()
    with psycopg.connect(plain_dsn, autocommit=True) as conn:
        ConvkeyMachine.conn = conn
        ConvkeyMachine.dsn = plain_dsn
        ConvkeyMachine.tables, ConvkeyMachine.sequences = package_relations(conn)
        STATS.update(examples=0, steps=0, calls={}, known_bugs={}, branches=collections.Counter())
        started = time.monotonic()
        run_state_machine_as_test(ConvkeyMachine, settings=conf)
        seconds = time.monotonic() - started
    print(f"model test: {STATS['examples']} examples, {STATS['steps']} steps in {seconds:.1f} s; {STATS['calls']}; "
          f"known SQL bugs hit: {STATS['known_bugs']}\nrule branches: {dict(sorted(STATS['branches'].items()))}")
    reliability_record(examples=STATS["examples"], steps=STATS["steps"], calls=STATS["calls"],
                       seconds=round(seconds, 1), known_sql_bugs=STATS["known_bugs"], violations=0)


# --- SQL bugs the model found: minimal cases, fixed -----------------------------------------------
# An unmerge side left owning no identity stays a live unresolved row (key NULL, the legacy columns
# of the merge audit's snapshot, its messages); the separation keeps the backfill from joining the
# two sides again (README "Undoing a merge").
def _msg(conn, wa, pmid, at, phone=None):
    return conn.execute("SELECT conversation_id FROM convkey.record_message(1, %s, 'in', %s, 'x', "
                        "p_phone_e164 => %s, p_sent_at => %s)", (wa, pmid, phone, at)).fetchone()[0]


def _legacy(conn, wa, phone, last_at, pmid):
    cid = conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id, phone_e164, "
                       "last_message_at) VALUES (1, %s, %s, %s) RETURNING id", (wa, phone, last_at)).fetchone()[0]
    conn.execute("INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction, provider_message_id, "
                 "sent_at) VALUES (1, %s, 'in', %s, %s)", (cid, pmid, last_at))
    return cid


def _row(conn, cid):
    """(canonical_key, lead_id, phone_e164, customer_wa_id, merged_into_id) of a conversation."""
    return conn.execute("SELECT canonical_key, lead_id, phone_e164, customer_wa_id, merged_into_id "
                        "FROM convkey.whatsapp_conversation WHERE business_id = 1 AND id = %s", (cid,)).fetchone()


def _messages(conn, cid):
    return {r[0] for r in conn.execute("SELECT provider_message_id FROM convkey.whatsapp_message "
                                       "WHERE business_id = 1 AND conversation_id = %s", (cid,))}


def _owned(conn, cid):
    return {tuple(r) for r in conn.execute("SELECT kind, value FROM convkey.identity "
                                           "WHERE business_id = 1 AND conversation_id = %s", (cid,))}


def _consistent(conn, unresolved: int):
    """The invariants hold; dedup_health counts the unresolved rows as it counts legacy ones."""
    from invariants import check_invariants

    assert check_invariants(conn) == []
    assert conn.execute("SELECT live_without_key, duplicate_keys FROM convkey.dedup_health "
                        "WHERE business_id = 1").fetchone() == (unresolved, 0)


def test_bug_unmerge_of_backfill_merge_won_by_the_legacy_row(plain_dsn):
    """A backfill merge whose survivor is the legacy row itself (which owned no identity before the
    merge): undone, the phone goes back to the duplicate and the legacy row is unresolved again,
    with its customer_wa_id and its message; a second backfill and new messages keep them apart."""
    wa = "972520000001@s.whatsapp.net"
    with psycopg.connect(plain_dsn, autocommit=True) as conn:
        a = _msg(conn, wa, "m1", T0)
        legacy = _legacy(conn, wa, None, T0 + dt.timedelta(hours=1), "L1")
        run_backfill(plain_dsn, execute=True)
        merge_id, primary, dup = conn.execute(
            "SELECT id, primary_id, duplicate_id FROM convkey.conversation_merge").fetchone()
        assert (primary, dup) == (legacy, a)     # the more recent legacy row survived
        assert conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,)).fetchone()[0] == a

        assert _row(conn, a) == ("phone:1:+972520000001", None, "+972520000001", wa, None)
        assert _owned(conn, a) == {("phone", "+972520000001")} and _messages(conn, a) == {"m1"}
        assert _row(conn, legacy) == (None, None, None, wa, None)
        assert _owned(conn, legacy) == set() and _messages(conn, legacy) == {"L1"}
        assert conn.execute("SELECT undone_at IS NOT NULL FROM convkey.conversation_merge").fetchone()[0]
        _consistent(conn, 1)

        report = run_backfill(plain_dsn, execute=True)    # the separation holds
        assert [u["conversation_id"] for u in report.unresolvable] == [legacy]
        assert conn.execute("SELECT count(*) FROM convkey.conversation_merge").fetchone()[0] == 1
        assert conn.execute("SELECT kind, other_conversation_id, owner_conversation_id, rule "
                            "FROM convkey.identity_conflict").fetchall() == [("phone", legacy, a, "separated")]
        assert _row(conn, legacy) == (None, None, None, wa, None)
        assert _msg(conn, wa, "m2", T0 + dt.timedelta(hours=2)) == a
        assert _messages(conn, legacy) == {"L1"}
        _consistent(conn, 1)


def test_bug_unmerge_after_the_primarys_lid_moved_away(plain_dsn):
    """The primary's only own identity (a LID) moved to a newer phone's person after the merge
    (rule (b)); undone, the phone goes back to the duplicate and the primary, owning nothing, is
    unresolved with its LID-era message and its customer_wa_id. A second backfill does not join it
    to the duplicate again: it joins the conversation its LID belongs to now."""
    lid_wa = "82399031500001@lid"
    with psycopg.connect(plain_dsn, autocommit=True) as conn:
        a = _msg(conn, lid_wa, "m1", T0 + dt.timedelta(minutes=2))
        b = _msg(conn, "972520000001@s.whatsapp.net", "m2", T0)
        assert conn.execute("SELECT convkey.link_identity(1, '82399031500001@lid', "
                            "'972520000001@s.whatsapp.net')").fetchone()[0] == a
        c = _msg(conn, lid_wa, "m3", T0 + dt.timedelta(minutes=3), phone="+972530000001")
        assert c not in (a, b)                       # the LID moved to the newest phone's person
        merge_id = conn.execute("SELECT id FROM convkey.conversation_merge").fetchone()[0]
        assert conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,)).fetchone()[0] == b

        assert _row(conn, b) == ("phone:1:+972520000001", None, "+972520000001", "972520000001@s.whatsapp.net", None)
        assert _owned(conn, b) == {("phone", "+972520000001")} and _messages(conn, b) == {"m2"}
        assert _row(conn, a) == (None, None, None, lid_wa, None)
        assert _owned(conn, a) == set() and _messages(conn, a) == {"m1"}
        assert _owned(conn, c) == {("phone", "+972530000001"), ("lid", "82399031500001")}
        assert _messages(conn, c) == {"m3"}
        _consistent(conn, 1)

        run_backfill(plain_dsn, execute=True)
        assert _messages(conn, b) == {"m2"} and _row(conn, b)[4] is None
        assert conn.execute("SELECT primary_id, duplicate_id, reason FROM convkey.conversation_merge "
                            "WHERE undone_at IS NULL").fetchall() == [(c, a, "backfill")]
        assert _messages(conn, c) == {"m1", "m3"}
        _consistent(conn, 0)


def test_bug_unmerge_restores_a_legacy_row_with_nothing(plain_dsn):
    """A legacy row known only by phone_e164, merged by the backfill into a more recent
    conversation: the merge moved no identity (the row owned none), so the row comes back owning
    none, unresolved, with its legacy phone_e164 (the CHECK that a row names someone holds) and its
    message. A second backfill leaves it unresolved: the separation holds."""
    with psycopg.connect(plain_dsn, autocommit=True) as conn:
        a = _msg(conn, "972520000001@s.whatsapp.net", "m1", T0 + dt.timedelta(hours=1))
        legacy = _legacy(conn, None, "+972520000001", T0, "L1")
        run_backfill(plain_dsn, execute=True)
        merge_id, dup = conn.execute("SELECT id, duplicate_id FROM convkey.conversation_merge").fetchone()
        assert dup == legacy
        assert conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,)).fetchone()[0] == legacy

        assert _row(conn, legacy) == (None, None, "+972520000001", None, None)
        assert _owned(conn, legacy) == set() and _messages(conn, legacy) == {"L1"}
        assert _row(conn, a)[0] == "phone:1:+972520000001" and _messages(conn, a) == {"m1"}
        _consistent(conn, 1)

        report = run_backfill(plain_dsn, execute=True)
        assert [u["conversation_id"] for u in report.unresolvable] == [legacy]
        assert conn.execute("SELECT count(*) FROM convkey.conversation_merge").fetchone()[0] == 1
        assert _row(conn, legacy) == (None, None, "+972520000001", None, None)
        assert _messages(conn, legacy) == {"L1"}
        # a manual merge may join them again, as after any unmerge
        assert conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (a, legacy)).fetchone()[0] == a
        assert _messages(conn, a) == {"m1", "L1"}
        _consistent(conn, 0)

"""A pure-Python reference model of convkey's identity graph, for the stateful test (test_model.py).

It holds what the database promises, not how it stores it: conversations (live or tombstones),
an ownership map (every identity - lead, phone, LID, BSUID - owned by one conversation or by one
not-yet-conversing *pending person* learned from links), messages, the merge audit with what each
merge moved, separations left by unmerges, and the rule refusals. Each API call is one method that
returns what the call returns and changes the model as the call changes the database, or raises
ModelError(sqlstate) without changing anything when the call must fail.

The rules, from README.md and the function headers (post-apply-30, 50-54, 34, 70-73):

* get-or-create (record_message): a call names identities, strongest first (lead > phone > lid >
  bsuid). All owned by one conversation: that one, nothing written. Otherwise, in strength order,
  the call's lead's conversation joins first (its lead becomes the anchor), then each other owner
  joins unless (a) it has a different lead than the anchor (the identity stays, 'different_lead'),
  (b) the identity is a LID/BSUID whose owner has another primary phone than the person's phone
  (the call's phone, else the first joined conversation's): the identity alone moves to the
  result ('moved_to_other_phone', its past messages stay), or (c) an unmerge separated the owner
  from one already joined ('separated'). Joined conversations merge into the most recent
  (last_message_at, NULL oldest, ties to the lowest id), one audit row each, duplicates in id
  order; none joined: a new conversation keyed by the strongest identity. Unowned identities
  attach; members of the pending persons the call touches attach too, except other leads than the
  anchor (unless the call's own lead is pending: merged leads stay together) and, when the
  pending group holds another phone than the person's, its non-lead members (rule (b) before any
  conversation: the LID leaves its old pending phone).
* A conversation's derived columns: lead_id kept while owned (else the preferred one, else the
  oldest owned lead), phone_e164 likewise (the primary phone), key from the strongest: lead, else
  phone, else a LID (kept while owned) or BSUID. A merge prefers the duplicate's lead/phone for a
  primary without one; the primary takes the union of activity (latest last_message_at). A
  conversation that owns no identity is unresolved: key NULL, lead_id and phone_e164 left as they
  are (legacy values).
* link_identity(a, b): 22023 when the two sides' conversations (or pending persons) have different
  leads. Two owners separated by an unmerge: nothing joins unless the source is 'manual' (which
  clears the separation). Neither side converses: both join one pending person (a LID whose pending
  person has another phone leaves it for the new phone's person). A LID owned by a conversation
  with another phone, linked to a phone without a conversation: the LID leaves for that phone's
  pending person. Otherwise: exactly get-or-create of the two identities.
* assign_lead: the lead's own conversation: no-op; the conversation has another lead: 22023; the
  lead has another conversation: the two merge (the most recent survives, no rule applies: the
  CRM said so); else the lead (and leads merged into it while pending) attach, the surviving
  (not merged-away) one becomes the key.
* merge_leads(from, into): both conversing: merge (most recent survives); one: the other lead and
  its pending leads attach; neither: one pending person of leads, from marked merged away. The
  survivor is keyed lead:{into}.
* unmerge(merge): 55000 when already undone or when the merge's primary was merged away later.
  Else messages and identities that merge moved and that the primary still holds go back; the
  duplicate gets its before-state activity, the primary the max of its before-state and its
  messages; both refreshed; the pair is separated. A side left owning no identity (a legacy row,
  or a primary whose own LID moved to a newer phone's person since) stays a live unresolved row
  with its messages: key NULL, lead_id, phone_e164 and customer_wa_id of its before-state.
* backfill: phase 1 reads every live row without a key, derives its identities from lead_id,
  phone_e164 and customer_wa_id; rows whose identities exist nowhere (not even pending) and are
  shared with no lower-id row claim them (key from the first identity); the others are deferred
  (or unresolvable with a reason). Phase 2 resolves each deferred row, in id order, like
  get-or-create with the row itself taking part (reason 'backfill'), except that a row whose lead
  belongs to a conversation an unmerge separated it from joins nothing (a 'separated' conflict).

Where the survivor of a merge is decided by data the test controls (last_message_at, ids), the
model predicts it exactly; the test compares ids as well as groupings.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
from dataclasses import dataclass, field

B = 1
LEAD, PHONE, LID, BSUID = "lead", "phone", "lid", "bsuid"
RANK = {LEAD: 0, PHONE: 1, LID: 2, BSUID: 3}
Ident = tuple[str, str]


class ModelError(Exception):
    """The call must fail with this SQLSTATE and change nothing."""

    def __init__(self, sqlstate: str, why: str, known_bug: str | None = None):
        super().__init__(f"{sqlstate}: {why}")
        self.sqlstate = sqlstate
        self.known_bug = known_bug   # an SQL bug reported to the lead: the model predicts today's error


def key_of(kind: str, value: str) -> str:
    return f"{kind}:{B}:{value}"


@dataclass
class Conv:
    id: int
    key: str | None
    lead: int | None          # lead_id
    phone: str | None         # phone_e164 (raw text on an unresolved row)
    wa: str | None            # customer_wa_id
    last_at: dt.datetime | None
    merged_into: int | None = None

    @property
    def live(self) -> bool:
        return self.merged_into is None


@dataclass
class Merge:
    id: int
    primary: int
    duplicate: int
    reason: str
    messages: frozenset
    identities: frozenset
    primary_before: Conv
    duplicate_before: Conv
    undone: bool = False


@dataclass
class Derived:
    """What the backfill reads from a raw identifier: a phone, a LID, or why it cannot."""
    phone: str | None = None
    lid: str | None = None
    bad: bool = False
    human: bool = False       # a human phone format (normalized by the runner, not the SQL grammar)


@dataclass
class Model:
    # raw customer_wa_id / phone_e164 strings the test used -> how convkey reads them
    raw: dict[str, Derived] = field(default_factory=dict)
    convs: dict[int, Conv] = field(default_factory=dict)
    conv_of: dict[Ident, int] = field(default_factory=dict)
    pend_of: dict[Ident, int] = field(default_factory=dict)
    created: dict[Ident, int] = field(default_factory=dict)   # transaction that inserted the identity row
    source: dict[Ident, str] = field(default_factory=dict)
    msg_conv: dict[str, int] = field(default_factory=dict)
    msg_at: dict[str, dt.datetime] = field(default_factory=dict)
    merges: dict[int, Merge] = field(default_factory=dict)
    separations: set[frozenset] = field(default_factory=set)
    # (kind, value, other conversation) -> [owner conversation, rule, count]
    conflicts: dict[tuple, list] = field(default_factory=dict)
    hits: collections.Counter = field(default_factory=collections.Counter)   # which rule branches ran
    next_conv: int = 1
    next_merge: int = 1
    next_pending: int = 1
    tick: int = 0

    # --- helpers -------------------------------------------------------------------------------
    def _hit(self, what: str) -> None:
        self.hits[what] += 1

    def _txn(self) -> None:
        self.tick += 1

    def live(self, cid: int) -> int:
        while self.convs[cid].merged_into is not None:
            cid = self.convs[cid].merged_into
        return cid

    def owned(self, cid: int) -> list[Ident]:
        return [i for i, c in self.conv_of.items() if c == cid]

    def members(self, pid: int) -> list[Ident]:
        return [i for i, p in self.pend_of.items() if p == pid]

    def exists(self, ident: Ident) -> bool:
        return ident in self.conv_of or ident in self.pend_of

    def _new_identity(self, ident: Ident, source: str) -> None:
        self.created[ident] = self.tick
        self.source[ident] = source

    def _own(self, ident: Ident, cid: int) -> None:
        self.pend_of.pop(ident, None)
        self.conv_of[ident] = cid

    def _pend(self, ident: Ident, pid: int) -> None:
        self.conv_of.pop(ident, None)
        self.pend_of[ident] = pid

    def _separated(self, a: int, b: int) -> bool:
        return frozenset((a, b)) in self.separations

    def _most_recent(self, ids) -> int:
        """ORDER BY last_message_at DESC NULLS LAST, id LIMIT 1."""
        return min(ids, key=lambda c: (self.convs[c].last_at is None,
                                       -(self.convs[c].last_at.timestamp()) if self.convs[c].last_at else 0, c))

    def _conflict(self, ident: Ident, other: int, owner: int | None, rule: str) -> None:
        k = (ident[0], ident[1], other)
        row = self.conflicts.get(k)
        self.conflicts[k] = [owner, rule, (row[2] + 1) if row else 1]

    def _pick(self, cands: list[Ident], target: str | None) -> str | None:
        """ORDER BY (value = target) DESC, created_at, value LIMIT 1."""
        if not cands:
            return None
        return min(cands, key=lambda i: (target is None or i[1] != target, self.created[i], i[1]))[1]

    def refresh(self, cid: int, prefer_lead: int | None = None, prefer_phone: str | None = None) -> None:
        """convkey._refresh_conversation."""
        c = self.convs[cid]
        own = self.owned(cid)
        target_lead = c.lead if c.lead is not None else prefer_lead
        lead = self._pick([i for i in own if i[0] == LEAD], None if target_lead is None else str(target_lead))
        target_phone = c.phone if c.phone is not None else prefer_phone
        phone = self._pick([i for i in own if i[0] == PHONE], target_phone)
        if lead is not None:
            key = key_of(LEAD, lead)
        elif phone is not None:
            key = key_of(PHONE, phone)
        else:
            weak = [i for i in own if i[0] in (LID, BSUID)]
            key = None
            if weak:
                best = min(weak, key=lambda i: (i[0] == BSUID, c.key is not None and key_of(*i) != c.key,
                                                self.created[i], i[1]))
                key = key_of(*best)
        if key is not None:       # owning nothing: unresolved, the legacy lead and phone stay
            c.lead = None if lead is None else int(lead)
            c.phone = phone
        c.key = key

    def _snapshot(self, cid: int) -> Conv:
        return copy.copy(self.convs[cid])

    def _merge(self, primary: int, dup: int, reason: str) -> int:
        """convkey._merge_conversations."""
        p, d = self.convs[primary], self.convs[dup]
        pb, db = self._snapshot(primary), self._snapshot(dup)
        msgs = frozenset(m for m, c in self.msg_conv.items() if c == dup)
        for m in msgs:
            self.msg_conv[m] = primary
        ids = frozenset(self.owned(dup))
        for i in ids:
            self.conv_of[i] = primary
        d.key = None
        d.merged_into = primary
        p.wa = p.wa if p.wa is not None else db.wa
        if db.last_at is not None and (p.last_at is None or db.last_at > p.last_at):
            p.last_at = db.last_at
        self.refresh(primary, db.lead, db.phone)
        mid = self.next_merge
        self.next_merge += 1
        self.merges[mid] = Merge(mid, primary, dup, reason, msgs, ids, pb, db)
        return mid

    def _new_conv(self, key, lead, phone, wa, last_at=None) -> int:
        cid = self.next_conv
        self.next_conv += 1
        self.convs[cid] = Conv(cid, key, lead, phone, wa, last_at)
        return cid

    # --- get-or-create -------------------------------------------------------------------------
    def resolve(self, ids: list[Ident], wa: str | None, via: str, self_id: int | None = None) -> tuple[int, bool]:
        """convkey._resolve_conversation: (conversation, created)."""
        owners = [self.conv_of.get(i) for i in ids]
        if self_id is None and all(o is not None for o in owners) and len(set(owners)) == 1:
            self._hit("resolve:fast_path")
            return owners[0], False
        pend = [self.pend_of.get(i) for i in ids]
        person_phone = next((v for k, v in ids if k == PHONE), None)
        anchor = int(ids[0][1]) if ids[0][0] == LEAD else None
        merge: list[int] = [self_id] if self_id is not None else []
        attach: list[Ident] = []
        moves: list[tuple[Ident, int]] = []
        refused: list[tuple[Ident, int, str]] = []
        for ident, c in zip(ids, owners):
            if c is None:
                attach.append(ident)
                continue
            if c in merge:
                continue
            conv = self.convs[c]
            if ident[0] == LEAD:
                anchor = conv.lead if conv.lead is not None else anchor
            elif conv.lead is not None and anchor is not None and conv.lead != anchor:
                refused.append((ident, c, "different_lead"))
                self._hit("resolve:rule_a_different_lead")
                continue
            elif (ident[0] in (LID, BSUID) and conv.phone is not None and person_phone is not None
                  and conv.phone != person_phone):
                moves.append((ident, c))
                self._hit("resolve:rule_b_lid_moves")
                continue
            elif merge and any(self._separated(c, m) for m in merge):
                refused.append((ident, c, "separated"))
                self._hit("resolve:separated")
                continue
            merge.append(c)
            anchor = anchor if anchor is not None else conv.lead
            person_phone = person_phone if person_phone is not None else conv.phone

        persons = {p for p in pend if p is not None}
        if persons:
            group = [i for i, p in self.pend_of.items() if p in persons]
            clash = any(k == PHONE and person_phone is not None and v != person_phone for k, v in group)
            own_lead_pending = ids[0][0] == LEAD and pend[0] is not None
            for m in sorted(group, key=lambda i: (RANK[i[0]], i[1])):
                if m in attach:
                    continue
                if m[0] == LEAD and anchor is not None and m[1] != str(anchor) and not own_lead_pending:
                    continue
                if m[0] != LEAD and clash:
                    self._hit("resolve:pending_phone_clash")
                    continue
                self._hit("resolve:pending_member_attached")
                attach.append(m)
                if m[0] == LEAD:
                    anchor = anchor if anchor is not None else int(m[1])
                elif m[0] == PHONE:
                    person_phone = person_phone if person_phone is not None else m[1]

        def lead_order(v: str):
            src = 0 if (LEAD, v) not in self.source else (2 if self.source[(LEAD, v)] == "merge_leads" else 1)
            return (src, anchor is not None and v != str(anchor), v)
        leads = [v for k, v in attach if k == LEAD]
        new_lead = int(min(leads, key=lead_order)) if leads else None

        if merge:
            result = self._most_recent(merge)
            for d in sorted(set(merge) - {result}):
                self._merge(result, d, "auto" if self_id is None else "backfill")
                self._hit("resolve:merge" if self_id is None else "backfill:merge")
            created = False
        else:
            phones = sorted((v for k, v in attach if k == PHONE), key=lambda v: (v != person_phone, v))
            phone = phones[0] if phones else None
            if new_lead is not None:
                key = key_of(LEAD, str(new_lead))
            elif phone is not None:
                key = key_of(PHONE, phone)
            else:
                weak = sorted((i for i in attach if i[0] in (LID, BSUID)), key=lambda i: (i[0] != LID, i[1]))
                key = key_of(*weak[0])
            result = self._new_conv(key, new_lead, phone, wa)
            created = True
            self._hit("resolve:created")

        for ident in attach:
            if not self.exists(ident):
                self._new_identity(ident, via)
            self._own(ident, result)
        for ident, frm in moves:
            self._own(ident, result)
            self.source[ident] = via
            self.refresh(frm)
            self._conflict(ident, frm, result, "moved_to_other_phone")
        for ident, owner, rule in refused:
            self._conflict(ident, result, owner, rule)
        if not created:
            self.refresh(result, new_lead, person_phone)
        return result, created

    # --- API -----------------------------------------------------------------------------------
    def record_message(self, ids: list[Ident], wa: str | None, pmid: str, at: dt.datetime) -> tuple[int, bool]:
        """convkey.record_message: (conversation of the message, inserted)."""
        if pmid in self.msg_conv:
            return self.msg_conv[pmid], False
        self._txn()
        cid, _ = self.resolve(ids, wa, "record_message")
        c = self.convs[cid]
        if c.last_at is None or at > c.last_at:
            c.last_at = at
        c.wa = wa if wa is not None else c.wa
        self.msg_conv[pmid] = cid
        self.msg_at[pmid] = at
        return cid, True

    def link_identity(self, a: Ident, b: Ident, source: str) -> int | None:
        """convkey.link_identity: the surviving conversation or None."""
        if RANK[b[0]] < RANK[a[0]]:
            first, second = b, a
        else:
            first, second = a, b
        o1, o2 = self.conv_of.get(first), self.conv_of.get(second)
        p1, p2 = self.pend_of.get(first), self.pend_of.get(second)
        leads = {self.convs[o].lead for o in (o1, o2) if o is not None and self.convs[o].lead is not None}
        leads |= {int(i[1]) for i, p in self.pend_of.items()
                  if p is not None and p in (p1, p2) and i[0] == LEAD and self.source[i] != "merge_leads"}
        if len(leads) > 1:
            self._hit("link:22023_different_leads")
            raise ModelError("22023", f"link of different leads {sorted(leads)}")
        self._txn()
        if o1 is not None and o2 is not None and o1 != o2:
            if source == "manual":
                self.separations.discard(frozenset((o1, o2)))
            elif self._separated(o1, o2):
                self._conflict(first, o2, o1, "separated")
                self._conflict(second, o1, o2, "separated")
                self._hit("link:separated")
                return o1 if first == a else o2
        if o1 is None and o2 is None:
            if first[0] == PHONE and second[0] != PHONE and p2 is not None:
                if any(k == PHONE and v != first[1] for k, v in self.members(p2)):
                    p2 = None
                    self._hit("link:pending_lid_leaves_old_phone")
            self._hit("link:pending")
            person = p1 if p1 is not None else p2
            if person is None:
                person = self.next_pending
                self.next_pending += 1
            if p2 is not None and p2 != person:
                for m in self.members(p2):
                    self.pend_of[m] = person
            for ident in (first, second):
                if not self.exists(ident):
                    self._new_identity(ident, source)
                    self._pend(ident, person)
                elif self.pend_of.get(ident) != person:
                    self._pend(ident, person)
                    self.source[ident] = source
            return None
        if (first[0] == PHONE and second[0] != PHONE and o1 is None and o2 is not None
                and self.convs[o2].phone is not None and self.convs[o2].phone != first[1]):
            person = p1
            if person is None:
                person = self.next_pending
                self.next_pending += 1
            if not self.exists(first):
                self._new_identity(first, source)
                self._pend(first, person)
            self._pend(second, person)
            self.source[second] = source
            self.refresh(o2)
            self._conflict(second, o2, None, "moved_to_other_phone")
            self._hit("link:lid_leaves_for_pending_phone")
            return None
        cid, _ = self.resolve([first, second], None, "link:" + source)
        return cid

    def assign_lead(self, conversation_id: int, lead: int) -> int:
        """convkey.assign_lead: the surviving conversation."""
        cid = self.live(conversation_id)
        ident = (LEAD, str(lead))
        owner, pid = self.conv_of.get(ident), self.pend_of.get(ident)
        conv = self.convs[cid]
        if owner == cid:
            self._txn()
            return cid
        if conv.lead is not None:
            self._hit("assign_lead:22023")
            raise ModelError("22023", f"conversation {cid} already has lead {conv.lead}")
        self._txn()
        if owner is not None:
            survivor = self._most_recent([cid, owner])
            self._merge(survivor, owner if survivor == cid else cid, "assign_lead")
            self._hit("assign_lead:merge")
            return survivor
        if not self.exists(ident):
            self._new_identity(ident, "assign_lead")
        self._own(ident, cid)
        if pid is not None:
            for m in self.members(pid):
                if m[0] == LEAD:
                    self._own(m, cid)
        mine = [i for i in self.owned(cid) if i[0] == LEAD]
        best = min(mine, key=lambda i: (self.source[i] == "merge_leads", i[1] != str(lead)))
        conv.lead = int(best[1])
        conv.key = key_of(LEAD, best[1])
        return cid

    def merge_leads(self, from_lead: int, into_lead: int) -> int | None:
        """convkey.merge_leads: the surviving conversation or None."""
        if from_lead == into_lead:
            raise ModelError("22023", "the same lead twice")
        self._txn()
        f, t = (LEAD, str(from_lead)), (LEAD, str(into_lead))
        fc, tc = self.conv_of.get(f), self.conv_of.get(t)
        fp, tp = self.pend_of.get(f), self.pend_of.get(t)
        if fc is None and tc is None:
            person = tp if tp is not None else fp
            if person is None:
                person = self.next_pending
                self.next_pending += 1
            if fp is not None and fp != person:
                for m in self.members(fp):
                    self.pend_of[m] = person
            if not self.exists(t):
                self._new_identity(t, "merge_leads_into")
            self._pend(t, person)
            if not self.exists(f):
                self._new_identity(f, "merge_leads")
            self._pend(f, person)
            self.source[f] = "merge_leads"
            self._hit("merge_leads:pending")
            return None
        if fc is not None and tc is not None and fc != tc:
            survivor = self._most_recent([fc, tc])
            self._merge(survivor, tc if survivor == fc else fc, "merge_leads")
            self._hit("merge_leads:merge")
        else:
            survivor = tc if tc is not None else fc
            for i, p in list(self.pend_of.items()):
                if i[0] == LEAD and p is not None and p in (fp, tp):
                    self._own(i, survivor)
            for i in (f, t):
                if not self.exists(i):
                    self._new_identity(i, "merge_leads")
                self._own(i, survivor)
        self.source[f] = "merge_leads"
        conv = self.convs[survivor]
        conv.lead = into_lead
        conv.key = key_of(LEAD, str(into_lead))
        return survivor

    def unmerge_blocked(self, merge_id: int) -> bool:
        m = self.merges[merge_id]
        return (m.undone or self.convs[m.primary].merged_into is not None
                or self.convs[m.duplicate].merged_into != m.primary)

    def unmerge(self, merge_id: int) -> int:
        """convkey.unmerge: the restored duplicate."""
        m = self.merges[merge_id]
        if self.unmerge_blocked(merge_id):
            self._hit("unmerge:55000")
            raise ModelError("55000", f"merge {merge_id} cannot be undone now")
        self._txn()
        for pmid in m.messages:
            if self.msg_conv[pmid] == m.primary:
                self.msg_conv[pmid] = m.duplicate
        for i in m.identities:
            if self.conv_of.get(i) == m.primary:
                self.conv_of[i] = m.duplicate
        p, d = self.convs[m.primary], self.convs[m.duplicate]
        pb, db = m.primary_before, m.duplicate_before
        if pb.wa is None and p.wa == db.wa:
            p.wa = None
        stamps = [self.msg_at[x] for x, c in self.msg_conv.items() if c == m.primary]
        candidates = [t for t in [pb.last_at, max(stamps) if stamps else None] if t is not None]
        p.last_at = max(candidates) if candidates else None
        self._restore(m.primary, pb)
        d.merged_into = None
        d.wa = db.wa
        d.last_at = db.last_at
        self._restore(m.duplicate, db)
        self.separations.add(frozenset((m.primary, m.duplicate)))
        self._hit("unmerge:done")
        m.undone = True
        return m.duplicate

    def _restore(self, cid: int, before: Conv) -> None:
        """One side of an unmerge: refreshed from the identities it owns; owning none, an unresolved
        row with its before-state's legacy columns (convkey._restore_unresolved)."""
        if self.owned(cid):
            self.refresh(cid, before.lead, before.phone)
            return
        self._hit("unmerge:side_unresolved")
        c = self.convs[cid]
        c.key, c.lead, c.phone, c.wa = None, before.lead, before.phone, before.wa

    # --- legacy rows and the backfill ---------------------------------------------------------
    def insert_legacy(self, wa: str | None, lead: int | None, phone: str | None,
                      last_at: dt.datetime | None, messages: dict[str, dt.datetime]) -> int:
        cid = self._new_conv(None, lead, phone, wa, last_at)
        for pmid, at in messages.items():
            self.msg_conv[pmid] = cid
            self.msg_at[pmid] = at
        return cid

    def derive(self, c: Conv) -> list[Ident] | None:
        """convkey._backfill_identities (with the runner's phone normalization): None = unresolvable."""
        phone = None
        if c.phone is not None:
            # a raw legacy value, or the E.164 primary phone an unmerge restored from a keyed row
            d = self.raw.get(c.phone, Derived(phone=c.phone))
            if d.bad or d.phone is None:
                return None
            phone = d.phone
        wa_phone = wa_lid = None
        if c.wa is not None:
            d = self.raw[c.wa]
            if d.bad:
                return None
            if d.human:
                if phone is not None and d.phone != phone:
                    return None
                wa_phone = d.phone
            else:
                if d.phone is not None and phone is not None and d.phone != phone:
                    return None      # p_phone_e164 and the phone JID differ: 22023
                wa_phone, wa_lid = d.phone, d.lid
        ids: list[Ident] = []
        if c.lead is not None:
            ids.append((LEAD, str(c.lead)))
        p = phone if phone is not None else wa_phone
        if p is not None:
            ids.append((PHONE, p))
        if wa_lid is not None:
            ids.append((LID, wa_lid))
        return ids or None

    def backfill(self) -> dict[str, int]:
        """run_backfill(execute=True): phase 1 (one batch) then phase 2 (one transaction per row)."""
        self._txn()
        rows = sorted(c.id for c in self.convs.values() if c.live and c.key is None)
        derived = {cid: self.derive(self.convs[cid]) for cid in rows}
        ok = {cid: ids for cid, ids in derived.items() if ids is not None}
        first: dict[Ident, int] = {}
        for cid, ids in ok.items():
            for i in ids:
                first[i] = min(first.get(i, cid), cid)
        winners = [cid for cid, ids in ok.items()
                   if all(not self.exists(i) and first[i] == cid for i in ids)]
        for cid in winners:
            ids = ok[cid]
            for i in ids:
                self._new_identity(i, "backfill")
                self._own(i, cid)
            c = self.convs[cid]
            c.key = key_of(*ids[0])
            c.phone = next((v for k, v in ids if k == PHONE), None)
        deferred = sorted(cid for cid in ok if cid not in winners)
        self.hits["backfill:claimed"] += len(winners)
        self.hits["backfill:deferred"] += len(deferred)
        out = {"claimed": len(winners), "deferred": len(deferred), "unresolvable": len(rows) - len(ok)}
        for cid in deferred:
            self._txn()
            c = self.convs[cid]
            if not (c.live and c.key is None):
                continue
            lead = ok[cid][0] if ok[cid][0][0] == LEAD else None
            owner = self.conv_of.get(lead) if lead else None
            if owner is not None and self._separated(owner, cid):
                self._conflict(lead, cid, owner, "separated")
                self._hit("backfill:lead_separated")
                continue
            self.resolve(ok[cid], None, "backfill", self_id=cid)
        out["unresolvable_after"] = sum(1 for c in self.convs.values() if c.live and c.key is None)
        return out

    def renumber_merges(self, first: int, db_ids: dict[tuple[int, int], int]) -> None:
        """Take the database's audit ids for the merges from `first` on: the backfill writes the merges
        of its set-based path before the per-row ones of the same chunk, so their ids, not what they
        did, may come in another order than the model's one-row-at-a-time replay."""
        kept = {i: x for i, x in self.merges.items() if i < first}
        for x in (x for i, x in self.merges.items() if i >= first):
            x.id = db_ids[(x.primary, x.duplicate)]
            kept[x.id] = x
        self.merges = kept
        self.next_merge = max(kept, default=0) + 1

    # --- what the test compares ---------------------------------------------------------------
    def groups(self) -> dict[int, frozenset]:
        """live conversation -> the identities it owns."""
        out: dict[int, set] = {c.id: set() for c in self.convs.values() if c.live}
        for i, c in self.conv_of.items():
            out[c].add(i)
        return {c: frozenset(s) for c, s in out.items()}

    def pending_groups(self) -> set[frozenset]:
        out: dict[int, set] = {}
        for i, p in self.pend_of.items():
            out.setdefault(p, set()).add(i)
        return {frozenset(s) for s in out.values()}

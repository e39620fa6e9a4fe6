"""convkey demo: one thread per person where the naive remoteJid key makes several, the same
figures for a seed, and a stream generator that keeps its promises."""

import io
import json
import re
from collections import defaultdict

from convkey.cli import main
from convkey.demo import run_demo
from convkey.demo_events import generate
from convkey.jid import parse_wa_id


def _demo(dsn: str, people: int, seed: int) -> str:
    out = io.StringIO()
    assert run_demo(dsn, people=people, seed=seed, out=out) == 0
    return out.getvalue()


def _figure(text: str, label: str) -> int:
    return int(re.search(rf"^  {re.escape(label)}\s+([\d,]+)\s", text, re.MULTILINE).group(1).replace(",", ""))


def _stable(text: str) -> list[str]:
    """The output without what may differ between runs: the business id and the timings."""
    return [line for line in text.splitlines() if "business" not in line and "lines/s" not in line]


def test_demo_one_thread_per_person_and_the_same_figures_for_a_seed(db_dsn):
    first = _demo(db_dsn, 40, 3)
    assert _figure(first, "convkey") == _figure(first, "people") == 40
    assert _figure(first, "naive key (remoteJid)") > 40
    assert "convkey: one thread per person" in first
    assert _figure(first, "duplicate_keys") == 0 and _figure(first, "lid_only_waiting") == 0
    assert _figure(first, "bad lines") == 0 and _figure(first, "duplicates (retries)") > 0
    assert "two CRM leads, merged" in first and "A few threads" in first
    # the same seed again, in another (fresh) business of the same database: the same figures
    second = _demo(db_dsn, 40, 3)
    assert re.search(r"business (\d+)", first).group(1) != re.search(r"business (\d+)", second).group(1)
    assert _stable(second) == _stable(first)
    assert _stable(_demo(db_dsn, 40, 4)) != _stable(first)


def test_demo_command(db_dsn, capsys):
    assert main(["demo", "--people", "12", "--seed", "2", "--dsn", db_dsn]) == 0
    out = capsys.readouterr().out
    assert _figure(out, "convkey") == _figure(out, "people") == 12


def test_stream_keeps_its_promises():
    stream = generate(120, 5)
    assert generate(120, 5).lines == stream.lines
    people = stream.people
    assert len({p.e164 for p in people}) == 120                       # no phone shared by two people
    lids = [p.lid for p in people if p.lid]
    assert len(set(lids)) == len(lids)                                 # nor a LID
    ident = lambda jid: (lambda w: w.phone_e164 or w.lid)(parse_wa_id(jid))  # noqa: E731
    owner = {p.e164: p.index for p in people} | {p.lid: p.index for p in people if p.lid}
    revealed, naive = set(), set()
    for line, person in zip(stream.lines, stream.line_person):
        obj = json.loads(line)
        pairs = []
        if obj.get("type") == "link":
            pairs = [(obj["wa_id"], obj["other"])]
        elif "key" in obj:
            k = obj["key"]
            if k["remoteJid"].endswith(("@s.whatsapp.net", "@c.us", "@lid")) and "protocolMessage" not in obj["message"]:
                naive.add(k["remoteJid"])
                assert owner[ident(k["remoteJid"])] == person  # only the person's own identifiers
                pairs = [(k["remoteJid"], k["remoteJidAlt"])] if k.get("remoteJidAlt") else []
            elif k.get("participantAlt"):
                pairs = [(k["participant"], k["participantAlt"])]
        for a, b in pairs:
            assert owner[ident(a)] == owner[ident(b)]
            revealed.add(owner[ident(a)])
    assert len(naive) == stream.naive_threads > 120
    assert {p.index for p in people if p.lid} <= revealed               # every LID meets its phone

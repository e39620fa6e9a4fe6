"""Part 4: ``convkey.phone.normalize_phone`` calls/s on a realistic mix, cold and cached.

The mix (seeded, so every run sees the same inputs): Israeli national numbers with dashes,
spaces or nothing, +972 and 00972 forms, Brazilian, Mexican and US international numbers,
WhatsApp ids (refused: a JID is not a phone) and garbage (refused). Every input is distinct, so a
pass after ``normalize_phone.cache_clear()`` misses the cache on every call (cold) and a second
pass hits it on every call (cached).
"""

from __future__ import annotations

import random
import time

from bench.stats import Section, Summary, Table

KEY = "phone"
TITLE = "4. Phone normalization (convkey.phone.normalize_phone)"

# (category, weight, generator)
IL_PREFIXES = ["50", "52", "53", "54", "55", "58"]


def _il(r: random.Random) -> tuple[str, str]:
    return r.choice(IL_PREFIXES), f"{r.randrange(10**7):07d}"


def _gen_il_dashes(r):
    p, s = _il(r)
    return f"0{p}-{s[:3]}-{s[3:]}"


def _gen_il_spaces(r):
    p, s = _il(r)
    return f"0{p} {s[:3]} {s[3:]}"


def _gen_il_plain(r):
    p, s = _il(r)
    return f"0{p}{s}"


def _gen_plus972(r):
    p, s = _il(r)
    return r.choice([f"+972{p}{s}", f"+972 {p}-{s[:3]}-{s[3:]}", f"+972-{p}-{s}"])


def _gen_00972(r):
    p, s = _il(r)
    return r.choice([f"00972{p}{s}", f"00972 {p} {s[:3]} {s[3:]}"])


def _gen_br(r):
    area = r.choice(["11", "21", "31", "66", "85"])
    n = f"{r.randrange(10**8):08d}"
    return r.choice([f"+55 {area} 9{n[:4]}-{n[4:]}", f"55{area}9{n}", f"+55{area}{r.choice('6789')}{n[1:]}"])


def _gen_mx(r):
    n = f"{r.randrange(10**8):08d}"
    return r.choice([f"+52 1 55 {n[:4]} {n[4:]}", f"+52 55 {n[:4]} {n[4:]}", f"52155{n}"])


def _gen_us(r):
    area = r.choice(["212", "415", "646", "305", "617"])
    n = f"{r.randrange(2, 10)}{r.randrange(10**6):06d}"
    return r.choice([f"+1 ({area}) {n[:3]}-{n[3:]}", f"+1{area}{n}", f"001 {area} {n[:3]} {n[3:]}"])


def _gen_jid(r):
    p, s = _il(r)
    return r.choice([f"972{p}{s}@s.whatsapp.net", f"{r.randrange(10**13, 10**15)}@lid", f"972{p}{s}:12@s.whatsapp.net"])


def _gen_garbage(r):
    return r.choice([
        "", "   ", "n/a", "call me", f"{r.randrange(1000)}", f"050-{r.randrange(1000):03d}",
        f"+972 50 {r.randrange(10**9)}", f"050-123-4567 ext {r.randrange(100)}", f"+999{r.randrange(10**9)}",
    ]) + " " * r.randrange(2)


MIX = [
    ("IL national, dashes", 25, _gen_il_dashes),
    ("IL national, spaces", 10, _gen_il_spaces),
    ("IL national, plain", 10, _gen_il_plain),
    ("+972", 15, _gen_plus972),
    ("00972", 8, _gen_00972),
    ("BR international", 8, _gen_br),
    ("MX international", 5, _gen_mx),
    ("US international", 7, _gen_us),
    ("WhatsApp ids (refused)", 6, _gen_jid),
    ("garbage (refused)", 6, _gen_garbage),
]


def make_inputs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` distinct (category, raw) pairs in the proportions of MIX."""
    r = random.Random(seed)
    names = [m[0] for m in MIX]
    weights = [m[1] for m in MIX]
    gens = {m[0]: m[2] for m in MIX}
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    tries = 0
    while len(out) < n and tries < n * 50:
        tries += 1
        cat = r.choices(names, weights)[0]
        raw = gens[cat](r)
        if raw in seen:
            continue
        seen.add(raw)
        out.append((cat, raw))
    return out


def _pass(normalize, raws: list[str]) -> tuple[float, int]:
    refused = 0
    t0 = time.perf_counter()
    for raw in raws:
        try:
            normalize(raw)
        except ValueError:  # InvalidIdentifier is a ValueError
            refused += 1
    return time.perf_counter() - t0, refused


def run(ctx) -> Section:
    from convkey.phone import normalize_phone

    inputs = make_inputs(ctx.phone_inputs)
    raws = [raw for _, raw in inputs]
    cold, cached = [], []
    refused = 0
    # load phonenumbers' per-region metadata (lazy, once per process) before anything is timed
    _pass(normalize_phone, [raw for _, raw in make_inputs(min(2000, len(raws)), seed=99)])
    for rep in range(ctx.reps):
        normalize_phone.cache_clear()
        t, refused = _pass(normalize_phone, raws)
        cold.append(len(raws) / t)
        t, _ = _pass(normalize_phone, raws)
        cached.append(len(raws) / t)
        ctx.log(f"    phone rep {rep + 1}/{ctx.reps}: cold {cold[-1]:,.0f}/s, cached {cached[-1]:,.0f}/s")
    info = normalize_phone.cache_info()
    # per category, cold, one pass each (informative)
    by_cat = []
    for name, weight, _ in MIX:
        sub = [raw for cat, raw in inputs if cat == name]
        if not sub:
            continue
        normalize_phone.cache_clear()
        t, ref = _pass(normalize_phone, sub)
        by_cat.append([name, f"{weight}%", str(len(sub)), f"{t / len(sub) * 1e6:.1f}", f"{ref}/{len(sub)}"])
    normalize_phone.cache_clear()
    cold_s, cached_s = Summary(cold), Summary(cached)
    speedup = Summary([c / k for c, k in zip(cached, cold)])
    main = Table(["", "calls/s, median (min-max)", "us/call (median)"], [
        ["cold (cache cleared, every input new)", cold_s.rate(), f"{1e6 / cold_s.median:.1f}"],
        ["cached (same inputs again)", cached_s.rate(), f"{1e6 / cached_s.median:.2f}"],
        ["cached / cold", speedup.ratio(), ""],
    ])
    cats = Table(["category", "share", "inputs", "cold us/call", "refused"], by_cat,
                 title="Cold cost per category (one pass)")
    text = (f"{len(raws)} distinct inputs, default region IL, {refused} refused (InvalidIdentifier). "
            f"One thread, in-process; the cache is an lru_cache of {info.maxsize} entries.")
    return Section(KEY, TITLE, text, [main, cats])

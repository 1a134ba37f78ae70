"""Organised group visits 结伴就医: the same three or more insured people settle together at one institution on
day after day — recruited patients or hired cards (组织参保人集中就医, 团伙骗保).

Found incrementally as claims arrive, per doctor (医保医师; the detector is re-keyed by institution and doctor, or
by institution when a claim names no doctor, or with ``same_doctor`` off): each settlement is a *co-visit* with the
``neighbours`` settlements just before it at the same doctor within ``window_minutes`` — people brought together
are seen one after another, while at a busy hospital other patients pass between them at the cashier. Each
co-visiting pair keeps the days it co-visited within ``horizon_days``. When a pair reaches ``min_days`` days, the
group is grown from it: every patient who co-visited with all its members on at least ``min_days`` of the same
days joins. A group of ``min_members`` or more raises one alert; later members and days re-send it under the same
id. Settlements are paired in event-time order once the watermark is ``grace_minutes`` past them, so the alerts
do not depend on the order the partitions were read in.

The memory is bounded: at most ``max_pairs`` pairs per table — past it the one-off co-visits are forgotten, the
oldest first, so a group must come back before its first visit is forgotten (about a month at a doctor's forty
settlements a day). A group seen by different doctors on different days is not linked (per institution, with
``same_doctor`` off, it would be, with a much shorter reach at a busy site). ``zhijian group-bench`` measures the
time per claim, the memory and the reach at each kind of institution.

The entity is the group, ``<institution>/<doctor>@<first shared day>`` (one case per group in the workbench); the
alert names the members by pseudonym, the days, each member's claims on them, and the money. A couple who always
come together is two people, not a group; a family of three who came together twice is not yet one either.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([GroupVisitsDetector()])
>>> n = 0
>>> def visit(patient, day, minute):
...     global n
...     n += 1
...     e = {"claim_id": f"C{n}", "institution_id": "K04", "patient": patient, "claim_type": "outpatient",
...          "event_time": f"2026-10-{day:02d}T09:{minute:02d}:00+08:00", "total_amount": 100.0}
...     e["_t"] = 1791331200.0 + day * 86400 + minute * 60
...     return d.process(e, Source("zhijian.claims", 0, n, e["claim_id"]))
>>> [a for day in (1, 8) for m, p in enumerate(("Pa", "Pb", "Pc")) for a in visit(p, day, 2 * m)]
[]
>>> [a for m, p in enumerate(("Pa", "Pb", "Pc")) for a in visit(p, 15, 2 * m)]   # judged once settled
[]
>>> [a] = visit("Pz", 15, 30)                   # the watermark passes them by the grace
>>> a.entity_kind, a.entity_id, a.numbers["members"], a.numbers["days"]
('group', 'K04@2026-10-01', ['Pa', 'Pb', 'Pc'], ['2026-10-01', '2026-10-08', '2026-10-15'])
>>> print(a.reason)
3 insured people settled together at K04 on 3 days (2026-10-01, 2026-10-08, 2026-10-15), within 10 min of each other each time: Pa, Pb, Pc; 900.00 settled on those days
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class GroupVisitsConfig:
    """Configuration ``[claim.group_visits]``."""

    window_minutes: float = 10.0  # settlements this close are a co-visit
    neighbours: int = 5  # each settlement is paired with at most this many just before it
    min_members: int = 3
    min_days: int = 3
    horizon_days: int = 90  # the days of a group count within this many days
    #: per table (a doctor's, or an institution's); past it the one-off pairs, oldest first, are forgotten. It bounds
    #: the memory and each key's changelog record (about 110 bytes a pair: keep it well under Kafka's 1 MiB)
    max_pairs: int = 2000
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "pharmacy"])
    #: pair settlements billed by the same doctor (or pharmacist) when the claim names one: a group is seen one
    #: after another, while at a busy site other patients pass between them at the cashier
    same_doctor: bool = True
    #: a settlement is paired once the watermark has passed it by this much (a till's late upload): the pairs,
    #: hence the alerts, do not depend on the order the partitions were read in
    grace_minutes: float = 10.0


#: how often (event time) the settlements past the grace are paired
SETTLE_EVERY_S = 60.0


def _day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


# A pair's days, as its table keeps them: one text "day,a's claim,b's claim,a's amount,b's amount" a day, joined by
# ";" — one string a pair instead of a list of five-item lists. A doctor's table holds up to ``max_pairs`` pairs and is
# encoded whole at every checkpoint after a settlement changed it; walking seven objects a pair, scattered over a
# long-running worker's heap, made that encoding the largest share of the bench's steady phase (docs/benchmark.md).
# A day whose claim ids hold the separators, and a table written before the text, keep the lists: every reader takes
# both (:func:`pair_days`).
Days = str | list[list[Any]]


def _text(entry: list[Any]) -> str | None:
    day, claim_a, claim_b, amount_a, amount_b = entry
    if "," in claim_a or ";" in claim_a or "," in claim_b or ";" in claim_b:
        return None
    return f"{day},{claim_a},{claim_b},{amount_a!r},{amount_b!r}"


def pair_days(value: Days | None) -> list[list[Any]]:
    """A pair's days as [day ordinal, a's claim, b's claim, a's amount, b's amount], oldest first.

    >>> pair_days("739901,C1,C2,5.04,8.4;739908,C7,C9,5.0,1.25")
    [[739901, 'C1', 'C2', 5.04, 8.4], [739908, 'C7', 'C9', 5.0, 1.25]]
    >>> pair_days([[739901, "C1,x", "C2", 5.04, 8.4]]) == [[739901, "C1,x", "C2", 5.04, 8.4]]
    True
    """
    if not value:
        return []
    if not isinstance(value, str):
        return value
    out = []
    for text in value.split(";"):
        day, claim_a, claim_b, amount_a, amount_b = text.split(",")
        out.append([int(day), claim_a, claim_b, float(amount_a), float(amount_b)])
    return out


def _joined(entries: list[list[Any]]) -> Days | None:
    if not entries:
        return None
    texts = [_text(e) for e in entries]
    return ";".join(texts) if None not in texts else entries  # type: ignore[arg-type]


def _appended(value: Days | None, entry: list[Any]) -> Days:
    text = _text(entry)
    if value is None:
        return text if text is not None else [entry]
    if isinstance(value, str) and text is not None:
        return f"{value};{text}"
    return [*pair_days(value), entry]


def day_count(value: Days) -> int:
    return value.count(";") + 1 if isinstance(value, str) else len(value)


def first_day(value: Days) -> int:
    return int(value[:value.index(",")]) if isinstance(value, str) else value[0][0]


def last_day(value: Days) -> int:
    if not isinstance(value, str):
        return value[-1][0]
    start = value.rfind(";") + 1
    return int(value[start:value.index(",", start)])


class GroupVisitsDetector(KeyedDetector):
    name = "claim.group_visits"
    version = "1"
    stream = "claim"
    Limits = GroupVisitsConfig  # its configuration section [claim.group_visits]
    key, key_field = "institution", "institution_id"
    fields = ("claim_id", "claim_type", "institution_id", "region", "patient", "doctor_id", "event_time",
              "total_amount")

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # a group shows on its third shared day, weeks after its first: only its own scenario, over two weeks; a
        # small table, so that forgetting runs under every layout (and the layout model's full snapshots stay small)
        return {"days": 14, "own_scenarios": True, "limits": {"max_pairs": 300}}

    def __init__(self, config: GroupVisitsConfig | None = None) -> None:
        super().__init__(config)
        self.config = self.limits
        self.retention_s = (self.config.horizon_days + 1) * 86400.0
        self._ordinals: dict[str, int] = {}  # "YYYY-MM-DD" → its ordinal (a cache)

    def key_of(self, event: dict[str, Any]) -> str | None:
        if event["claim_type"] not in self.config.claim_types or not event.get("patient"):
            return None
        doctor = event.get("doctor_id") if self.config.same_doctor else None
        return f"{event['institution_id']}/{doctor}" if doctor else event["institution_id"]

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        st = ctx.state
        st["region"], st["institution"] = event.get("region", "unknown"), event["institution_id"]
        t, claim = event["_t"], event["claim_id"]
        # claim → [t, patient, day, amount, source]: settlements waiting for the watermark
        pending: dict[str, list[Any]] = st.setdefault("pending", {})
        # a settlement older than what was already paired came too late (or again): pairing it now would depend on
        # the order the partitions were read in; a redelivered one still pending is there already
        late = t < st.get("settled_t", float("-inf")) or any(r[2] == claim for r in st.get("recent", ()))
        if not late and claim not in pending:
            pending[claim] = [t, event["patient"], event["event_time"][:10], float(event.get("total_amount") or 0.0),
                              list(source)]
            st["next_t"] = min(t, st.get("next_t", t))
        return self._settle(ctx)

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        return self._settle(ctx)

    def _settle(self, ctx: Context) -> list[Alert]:
        """Pair the settlements the watermark has passed by ``grace_minutes``, in event-time order: who came just
        before whom does not depend on the order the partitions were read in."""
        st, grace = ctx.state, self.config.grace_minutes * 60
        pending = st.get("pending", {})
        out = []
        # in batches of a minute of event time: a busy site sorts what waits once a minute, not at every claim
        if pending and st["next_t"] <= ctx.watermark - grace and ctx.watermark >= st.get("settle_at", 0.0):
            for claim, (t, patient, day, amount, source) in sorted(pending.items(), key=lambda kv: (kv[1][0], kv[0])):
                if t > ctx.watermark - grace:
                    break
                del pending[claim]
                out += self._covisit(ctx, t, claim, patient, day, amount, source)
            st["settle_at"] = ctx.watermark + SETTLE_EVERY_S
            if pending:
                st["next_t"] = min(x[0] for x in pending.values())
        if pending:
            ctx.set_timer(max(st["next_t"] + grace, st.get("settle_at", 0.0)), "settle")
        else:
            st.pop("pending", None)
            st.pop("next_t", None)
            st.pop("settle_at", None)
        return out

    def _covisit(self, ctx: Context, t: float, claim: str, patient: str, day: str, amount: float,
                 source: list[Any]) -> list[Alert]:
        cfg, st = self.config, ctx.state
        today = self._ordinals.get(day)
        if today is None:
            today = self._ordinals[day] = date.fromisoformat(day).toordinal()
        # the settlements just before this one (at this doctor): [t, patient, claim id, amount]
        recent = [r for r in st.get("recent", ()) if t - r[0] <= cfg.window_minutes * 60]
        # pair "a|b" (a < b) → its days, one per day (see Days)
        pairs: dict[str, Days] = st.setdefault("pairs", {})
        ripe = []
        for r in recent[-cfg.neighbours:]:
            other = r[1]
            if other == patient:
                continue
            a, b = (patient, other) if patient < other else (other, patient)
            entry = [today, claim, r[2], amount, r[3]] if a == patient else [today, r[2], claim, r[3], amount]
            k = f"{a}|{b}"
            days: Days | None = pairs.get(k)
            if days is None:  # most co-visits: a first sighting
                pairs[k] = _appended(None, entry)
                continue
            if last_day(days) == today:  # settled in time order: the last day is the newest
                continue
            if first_day(days) <= today - cfg.horizon_days:
                days = _joined([x for x in pair_days(days) if x[0] > today - cfg.horizon_days])
            days = pairs[k] = _appended(days, entry)
            if day_count(days) >= cfg.min_days:
                ripe.append((a, b))
        recent.append([t, patient, claim, amount])
        st["recent"] = recent[-cfg.neighbours:]
        st["settled_t"] = t
        if len(pairs) > cfg.max_pairs:
            self._forget(pairs, today)
        out = []
        for a, b in ripe:
            out += self._grow(ctx, st, pairs, a, b, t, Source(*source))
        return out

    def _forget(self, pairs: dict[str, Days], today: int) -> None:
        """Down to three quarters of the cap: first what fell out of the horizon, then the one-off co-visits, the
        oldest first (the table's order is first sighting, the only day of a one-off), then — a table of recurring
        pairs only — those of fewest days. Amortised: once per quarter of the table."""
        cfg = self.config
        for k in [k for k, v in pairs.items() if last_day(v) <= today - cfg.horizon_days]:
            del pairs[k]
        keep = int(cfg.max_pairs * 0.75)
        excess = len(pairs) - keep
        if excess > 0:
            once = [k for k, v in pairs.items() if day_count(v) == 1][:excess]
            for k in once:
                del pairs[k]
            excess -= len(once)
        if excess > 0:
            for k in sorted(pairs, key=lambda k: (day_count(pairs[k]), last_day(pairs[k]), k))[:excess]:
                del pairs[k]

    def _grow(self, ctx: Context, st: dict[str, Any], pairs: dict[str, Days], a: str, b: str,
              t: float, source: Source) -> list[Alert]:
        cfg = self.config

        def days_of(x: str, y: str) -> set[int]:
            return {e[0] for e in pair_days(pairs.get("|".join(sorted((x, y)))))}

        members, shared = [a, b], days_of(a, b)
        partners: dict[str, int] = {}
        for k in pairs:
            x, y = k.split("|")
            if x in (a, b) or y in (a, b):
                other = y if x in (a, b) else x
                if other not in (a, b):
                    partners[other] = partners.get(other, 0) + 1
        for x in sorted((p for p, n in partners.items() if n >= 2), key=lambda p: (-len(days_of(a, p) & shared), p)):
            together = set(shared)
            for m in members:
                together &= days_of(m, x)
            if len(together) >= cfg.min_days:
                members.append(x)
                shared = together
        if len(members) < cfg.min_members or len(shared) < cfg.min_days:
            return []
        members.sort()
        groups: dict[str, list[Any]] = st.setdefault("groups", {})  # group id → [members, days] alerted
        for gid, (known, _) in groups.items():
            if len(set(known) & set(members)) >= 2:  # the same group, grown or seen again
                if set(members) <= set(known) and set(shared) <= set(groups[gid][1]):
                    return []
                members = sorted(set(known) | set(members))
                shared = set(groups[gid][1]) | shared
                break
        else:
            gid = f"{ctx.key}@{_day(min(shared))}"
        groups[gid] = [members, sorted(shared)]
        latest = max(shared)
        st["groups"] = {g: v for g, v in groups.items() if v[1][-1] > latest - cfg.horizon_days}
        return [self._alert(st.get("institution", ctx.key), gid, members, sorted(shared), pairs, t,
                            st.get("region", "unknown"), source)]

    def _alert(self, institution: str, gid: str, members: list[str], days: list[int],
               pairs: dict[str, Days], t: float, region: str, source: Source) -> Alert:
        claims: dict[tuple[str, int], tuple[str, float]] = {}
        for i, x in enumerate(members):
            for y in members[i + 1:]:
                for e in pair_days(pairs.get(f"{x}|{y}")):
                    if e[0] in days:
                        claims[(x, e[0])] = (e[1], e[3])
                        claims[(y, e[0])] = (e[2], e[4])
        money = round(sum(v[1] for v in claims.values()), 2)
        shown = [_day(d) for d in days]
        reason = (f"{len(members)} insured people settled together at {institution} on {len(days)} days "
                  f"({', '.join(shown[:6])}{', …' if len(shown) > 6 else ''}), within "
                  f"{self.config.window_minutes:g} min of each other each time: {', '.join(members[:8])}"
                  f"{', …' if len(members) > 8 else ''}; {money:.2f} settled on those days")
        return Alert.build(
            detector=self.name, version=self.version, key=gid, stream=self.stream, severity="high", tier="fraud",
            entity_kind="group", entity_id=gid, institution_id=institution, region=region, event_t=t, score=len(members) * len(days) / (self.config.min_members * self.config.min_days),
            reason=reason,
            numbers={"institution_id": institution, "members": members, "days": shown, "amount": money,
                     "window_minutes": self.config.window_minutes,
                     "claims": [{"patient": p, "day": _day(d), "claim_id": c, "amount": amt}
                                for (p, d), (c, amt) in sorted(claims.items(), key=lambda kv: (kv[0][1], kv[0][0]))]},
            evidence=[source],
        )

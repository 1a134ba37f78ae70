"""The institution risk score 机构风险评分: rates a supervisor recognises, each against the institution's peers.

For every institution with at least ``min_claims`` claims in the window the score computes
rates — never counts, so that a big hospital is not risky for being big:

=====================  ==========================================================  ===============
feature                what it is                                                  exposure n
=====================  ==========================================================  ===============
claims_per_patient     claims per distinct beneficiary (虚构就诊, 重复就诊)           beneficiaries
money_per_patient      money per distinct beneficiary                              beneficiaries
amount_per_claim       money per claim (过度诊疗, 高套)                              claims
high_value_share       claims above the region's 90th percentile of their type     claims
readmission_rate       inpatient stays within 30 days of a discharge there          stays
length_of_stay         mean days in hospital (挂床, 延长住院)                        stays
shared_physicians      claims billed under physicians who bill mostly elsewhere    claims
                       (挂证, 借用医师)
duplicate_rate         duplicate-charge and unbundling alerts per claim             claims
rule_hit_rate          claims-rule alerts per claim                                 claims
claims_per_bed         claims per approved bed (when ``beds`` names them)           beds
money_per_bed          money per approved bed                                       beds
=====================  ==========================================================  ===============

Each rate is compared with the institution's *peers* — the same kind when configured
(``peer_groups``: 医疗机构类别, a registry the regulator keeps), else, and whenever a configured
kind has fewer than ``min_peers`` members, the kind inferred from the claim mix (sites with
inpatient stays, pharmacies, outpatient sites) — the way funnel plots compare hospitals
(Spiegelhalter 2005, *Funnel plots for comparing institutional performance*):

1. the rate's trend with size among the peers (a Theil–Sen line against log n) is taken out, so
   that what every big hospital does is not held against one;
2. the residual is divided by its expected spread, √(σ²/n + τ²): σ² the variance of one
   observation (a proportion's p(1−p), a mean's per-claim or per-stay variance from the ledger,
   Poisson for claims per patient, compound Poisson for money per patient), so that a rate from a
   few claims counts little; τ² the spread between honest institutions beyond chance, estimated
   robustly (MAD² of the residuals less the median sampling variance), so that a big institution's
   small difference is not "significant" for its size alone.

A rate counts only by how far it lies *above* its peers beyond ``noise_z`` = 2 deviations — among
nine rates of an honest institution one near two deviations is common chance — and at most up to
``cap_z`` = 5, so that no rate decides alone (each adds at most 3); the two rule-derived rates weigh
half (``rule_weight``: the rules alert on those claims already; in the score they corroborate).
Below two deviations a rate adds a hundredth of its z (at most 0.02), which orders the institutions
within blue without moving any across a grade. The score is the weighted sum; the grade follows it: 红 red ≥ 6 (two rates at five deviations or
more), 橙 orange ≥ 3, 黄 yellow ≥ 1, else 蓝 blue.

>>> from streams.workbench.risk.ledger import InstitutionLedger
>>> import random
>>> rng = random.Random(3)
>>> ledger = InstitutionLedger()
>>> n = 0
>>> def bill(inst, visits, patients, amount):
...     global n
...     for k in range(visits):
...         n += 1
...         ledger.learn_claim({"claim_id": f"CL{n}", "institution_id": inst, "patient": f"{inst}-P{k % patients}",
...                             "doctor_id": f"{inst}-D{k % 3}", "claim_type": "outpatient",
...                             "total_amount": rng.gauss(amount, amount / 10),
...                             "event_time": f"2026-10-{1 + k % 28:02d}T10:00:00+08:00"})
>>> for i, size in enumerate((60, 90, 150, 300, 600, 1200, 2400)):   # honest sites of every size
...     bill(f"C{i}", size, size // 2, 100.0)
>>> bill("K9", 120, 30, 160.0)       # a small clinic: four visits per patient, dearer claims
>>> scores = score_institutions(ledger, "2026-10-31")
>>> [s.institution_id for s in scores][:1], scores[0].grade, scores[0].top[:3]
(['K9'], 'red', ['high_value_share', 'amount_per_claim', 'money_per_patient'])
>>> round(scores[0].z["claims_per_patient"], 1)   # four visits a patient where peers bill two
5.5
>>> max(s.score for s in scores if s.institution_id != "K9") < 3
True
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from streams.workbench.risk.ledger import DUPLICATE_DETECTORS, InstitutionLedger

FEATURES = ("claims_per_patient", "money_per_patient", "amount_per_claim", "high_value_share", "readmission_rate",
            "length_of_stay", "shared_physicians", "duplicate_rate", "rule_hit_rate", "claims_per_bed", "money_per_bed")
RULE_FEATURES = ("duplicate_rate", "rule_hit_rate")
GRADES = (("red", 6.0), ("orange", 3.0), ("yellow", 1.0), ("blue", float("-inf")))


@dataclass(frozen=True)
class RiskSettings:
    """Configuration ``[risk]``."""

    window_days: int = 365  # the annual supervision cycle (年度监督检查): a year of claims per score
    #: fewer claims in the window: not scored. One: every institution with claims is scored — a small one's
    #: rates carry their sampling spread (√(σ²/n + τ²)) and its money its credibility, so it is shrunk toward its
    #: peers rather than left out (a floor of 20 left 1,588 of 2,092 real providers unscored, frauds among them)
    min_claims: int = 1
    min_stays: int = 5  # fewer inpatient stays: no readmission or length-of-stay rate
    noise_z: float = 2.0  # a rate counts by how far it lies beyond this many deviations (two: common chance)
    cap_z: float = 5.0  # … up to this many: no single rate adds more than cap_z − noise_z
    rule_weight: float = 0.5  # the rule-derived rates corroborate: half weight
    min_peers: int = 5  # a configured kind with fewer members falls back to the kind inferred from the mix
    peer_groups: dict[str, str] = field(default_factory=dict)  # institution → its kind, when known
    beds: dict[str, int] = field(default_factory=dict)  # institution → its approved beds (核定床位), when known
    #: the money at risk (:func:`money_at_risk`): the share of institutions taken as fraudulent before their rates
    #: are known (the prior), and the share of a fraudulent institution's payments that is improper (assumptions;
    #: the order they give depends on their ratio to the credible excess, not on their scale)
    prior: float = 0.05
    loss_share: float = 0.1
    #: the learned score (streams/workbench/risk/learned.py) is trained once this many institutions are labelled,
    #: this many of each class (fraud or violation; clean)
    min_labels: int = 20
    min_per_class: int = 5


@dataclass
class InstitutionScore:
    institution_id: str
    day: str
    score: float
    grade: str
    peer_group: str
    claims: int
    beneficiaries: int
    features: dict[str, float]
    z: dict[str, float]
    rank: int = 0
    of: int = 0
    money: float = 0.0  # paid in the window
    excess_payment: float = 0.0  # the credible payment above what its peers' rates would have cost
    money_at_risk: float = 0.0  # what the analyst's order sorts by (see money_at_risk)

    @property
    def top(self) -> list[str]:
        """The rates that raise the score, strongest first."""
        return [k for k, v in sorted(self.z.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "institution_id": self.institution_id, "day": self.day,
                "score": round(self.score, 3), "grade": self.grade, "rank": self.rank, "of": self.of,
                "peer_group": self.peer_group, "claims": self.claims, "beneficiaries": self.beneficiaries,
                "features": {k: round(v, 4) for k, v in self.features.items()},
                "z": {k: round(v, 3) for k, v in self.z.items()}, "top": self.top[:3],
                "money": round(self.money, 2), "excess_payment": round(self.excess_payment, 2),
                "money_at_risk": round(self.money_at_risk, 2)}


def grade_of(score: float) -> str:
    return next(name for name, floor in GRADES if score >= floor)


def inferred_group(totals: dict[str, Any], min_stays: int = 5) -> str:
    """The kind of site its claims show: inpatient stays, mostly dispensing, or outpatient."""
    if totals["stays"] >= max(min_stays, 0.01 * totals["claims"]):
        return "inpatient"
    if totals["pharmacy"] >= 0.5 * totals["claims"]:
        return "pharmacy"
    return "outpatient"


def _p90_bins(ledger: InstitutionLedger, insts: list[str], as_of: str) -> dict[str, int]:
    """Claim type → the first amount bin of the region's costliest tenth."""
    counts: dict[str, dict[int, int]] = {}
    for inst in insts:
        for (kind, b), n in ledger.amount_counts(inst, as_of).items():
            counts.setdefault(kind, {})
            counts[kind][b] = counts[kind].get(b, 0) + n
    out = {}
    for kind, bins in counts.items():
        total, seen = sum(bins.values()), 0
        for b in sorted(bins, reverse=True):
            seen += bins[b]
            if seen >= 0.1 * total:
                out[kind] = b
                break
    return out


#: feature → (value, exposure n, variance of one observation σ²) of one institution's window totals
Feature = tuple[float, float, float]


def _features(t: dict[str, Any], above: int, s: RiskSettings) -> dict[str, Feature]:
    claims, patients = t["claims"], max(t["beneficiaries"], 1)
    mean = t["money"] / claims
    second = t["money_sq"] / claims  # E[A²] of one claim's amount
    cpp = claims / patients

    def share(k: float, n: float) -> Feature:
        p = k / n
        return p, n, max(p * (1 - p), 1.0 / n)  # a share of 0 still has the spread of one more hit

    f: dict[str, Feature] = {
        "claims_per_patient": (cpp, patients, cpp),  # Poisson visits per patient
        "money_per_patient": (t["money"] / patients, patients, cpp * second),  # compound Poisson
        "amount_per_claim": (mean, claims, max(second - mean * mean, 0.0)),
        "high_value_share": share(above, claims),
        "duplicate_rate": share(sum(t["alerts"].get(d, 0) for d in DUPLICATE_DETECTORS), claims),
        "rule_hit_rate": share(sum(t["alerts"].values()), claims),
    }
    if t["stays"] >= s.min_stays:
        stays = t["stays"]
        los = t["stay_days"] / stays
        f["readmission_rate"] = share(t["readmissions"], stays)
        f["length_of_stay"] = (los, stays, max(t["stay_days_sq"] / stays - los * los, 0.0))
    f["shared_physicians"] = share(t["borrowed_claims"], claims)
    beds = s.beds.get(t["institution_id"], 0)
    if beds > 0:
        f["claims_per_bed"] = (claims / beds, beds, claims / beds)  # Poisson claims per bed
        f["money_per_bed"] = (t["money"] / beds, beds, claims / beds * second)  # compound Poisson
    return f


def _theil_sen(xs: list[float], ys: list[float], max_pairs: int = 20000) -> tuple[float, float]:
    """A line robust to the outliers it is meant to find: the median of pairwise slopes (pairs taken with a
    fixed stride when there are more than ``max_pairs``), and the median intercept."""
    n = len(xs)
    pairs = n * (n - 1) // 2
    stride = max(1, pairs // max_pairs)
    slopes, k = [], 0
    for i in range(n):
        for j in range(i + 1, n):
            if k % stride == 0 and xs[j] != xs[i]:
                slopes.append((ys[j] - ys[i]) / (xs[j] - xs[i]))
            k += 1
    slope = statistics.median(slopes) if slopes else 0.0
    return slope, statistics.median(y - slope * x for x, y in zip(xs, ys))


def funnel_z(values: dict[str, Feature]) -> dict[str, float]:
    """Each institution's z against its peers: size trend out, divided by √(σ²/n + τ²) (module docstring)."""
    return {i: z for i, (z, _) in funnel(values).items()}


def funnel(values: dict[str, Feature]) -> dict[str, tuple[float, float]]:
    """Each institution's (z, credible excess) against its peers: the z of :func:`funnel_z`, and its difference
    shrunk toward the peers by the positive-part James–Stein factor 1 − 1/z² — the part of it beyond what its
    spread √(σ²/n + τ²) explains: nothing within one deviation, three quarters at two, 96 % at five. A small
    institution's difference has a wide spread and counts little; a large one's counts almost whole."""
    names = sorted(values)
    xs = [math.log(max(values[i][1], 1.0)) for i in names]
    ys = [values[i][0] for i in names]
    slope, intercept = _theil_sen(xs, ys)
    resid = {i: y - (intercept + slope * x) for i, x, y in zip(names, xs, ys)}
    sampling = {i: values[i][2] / max(values[i][1], 1.0) for i in names}
    centre = statistics.median(resid.values())
    mad = statistics.median(abs(r - centre) for r in resid.values()) * 1.4826
    tau2 = max(0.0, mad * mad - statistics.median(sampling.values()))
    out = {}
    for i in names:
        spread = math.sqrt(sampling[i] + tau2)
        d = resid[i] - centre
        z = d / spread if spread > 0 else 0.0
        out[i] = (z, d * max(0.0, 1.0 - 1.0 / (z * z)) if z else 0.0)
    return out


#: feature → what one unit of it costs per unit of exposure, from an institution's totals: money features are
#: in yuan already; a visit more per patient costs the institution's mean claim
MONEY_FEATURES = ("money_per_patient", "amount_per_claim", "claims_per_patient", "money_per_bed")


def excess_payment(t: dict[str, Any], excess: dict[str, float], beds: int) -> float:
    """The credible payment above the peers: the largest of what each money rate's credible excess costs over the
    institution's exposure (the rates overlap — money per patient holds visits per patient and the claim's
    amount — so the largest, not the sum)."""
    claims, patients = t["claims"], max(t["beneficiaries"], 1)
    cost = {"money_per_patient": patients, "amount_per_claim": claims,
            "claims_per_patient": patients * t["money"] / max(claims, 1), "money_per_bed": beds}
    return max([max(0.0, excess[f]) * cost[f] for f in MONEY_FEATURES if f in excess] + [0.0])


def money_at_risk(money: float, score: float, excess: float, prior: float = 0.05, loss_share: float = 0.1) -> float:
    """What an analyst may recover from an institution, expected: the chance it is fraudulent — the prior, moved by
    the score read as a log-likelihood ratio (each rate adds at most ``cap_z − noise_z``) — times what it would
    then have taken: the credible excess payment, and a share of everything it was paid. Fraud losses grow with
    the money an institution moves; the score says how much of it to suspect.

    >>> round(money_at_risk(1_000_000, 0.0, 0.0)), round(money_at_risk(1_000_000, 6.0, 0.0))   # blue, red
    (5000, 95502)
    >>> money_at_risk(50_000, 9.0, 30_000.0) > money_at_risk(1_000_000, 0.0, 0.0)             # small, sure, dear
    True
    """
    odds = prior / (1.0 - prior) * math.exp(min(score, 50.0))
    return odds / (1.0 + odds) * (excess + loss_share * money)


def score_institutions(ledger: InstitutionLedger, as_of: str, settings: RiskSettings | None = None) -> list[InstitutionScore]:
    """Every institution with enough claims in the window ending ``as_of``, highest score first, ranked."""
    s = settings or RiskSettings()
    totals = {i: ledger.totals(i, as_of) for i in ledger.institutions()}
    insts = [i for i, t in totals.items() if t["claims"] >= s.min_claims]
    p90 = _p90_bins(ledger, insts, as_of)
    feats, inferred = {}, {}
    for inst in insts:
        counts = ledger.amount_counts(inst, as_of)
        above = sum(n for (kind, b), n in counts.items() if kind in p90 and b >= p90[kind])
        feats[inst] = _features({**totals[inst], "institution_id": inst}, above, s)
        inferred[inst] = inferred_group(totals[inst], s.min_stays)
    configured: dict[str, list[str]] = {}
    for inst in insts:
        if inst in s.peer_groups:
            configured.setdefault(s.peer_groups[inst], []).append(inst)
    groups = {i: (s.peer_groups[i] if i in s.peer_groups and len(configured[s.peer_groups[i]]) >= s.min_peers
                  else inferred[i]) for i in insts}
    members: dict[str, list[str]] = {}
    for inst, g in groups.items():
        members.setdefault(g, []).append(inst)
    z: dict[str, dict[str, float]] = {i: {} for i in insts}
    excess: dict[str, dict[str, float]] = {i: {} for i in insts}
    for group, peers in members.items():
        if len(peers) < 3:
            peers_for = insts  # alone in its kind: compared with everyone
        else:
            peers_for = peers
        for name in FEATURES:
            values = {p: feats[p][name] for p in peers_for if name in feats[p]}
            if len(values) < 3:
                continue
            zs = funnel(values)
            for inst in peers:
                if inst in zs:
                    z[inst][name], excess[inst][name] = zs[inst]
    out = []
    for inst in insts:
        score = 0.0
        for name, v in z[inst].items():
            w = s.rule_weight if name in RULE_FEATURES else 1.0
            score += w * (max(0.0, min(v, s.cap_z) - s.noise_z) + 0.01 * max(0.0, min(v, s.noise_z)))
        paid = excess_payment(totals[inst], excess[inst], s.beds.get(inst, 0))
        money = totals[inst]["money"]
        out.append(InstitutionScore(inst, as_of, score, grade_of(score), groups[inst], totals[inst]["claims"],
                                    totals[inst]["beneficiaries"], {k: v[0] for k, v in feats[inst].items()},
                                    z[inst], money=money, excess_payment=paid,
                                    money_at_risk=money_at_risk(money, score, paid, s.prior, s.loss_share)))
    out.sort(key=lambda x: (-x.score, x.institution_id))
    for rank, x in enumerate(out, 1):
        x.rank, x.of = rank, len(out)
    return out


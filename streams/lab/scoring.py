"""Scoring alerts against labelled ground truth: recall, precision and detection delay per scenario.

A ground-truth *incident* is one occurrence of a scenario: which entity, from when to when, and
which detectors are expected to catch it. An alert *matches* an incident when it comes from one
of those detectors, names the same entity, and its event time falls within the incident window
extended by a grace period (a breach is only known some time after its start).

* recall of a scenario = incidents with at least one matching alert / incidents;
* precision of a detector = its alerts that match some incident / its alerts (an alert
  matching nothing is a false alarm); precision of a scenario = the same over the alerts of
  the detectors expected to catch it (none yet: no precision, shown as –);
* an incident marked not required (a department's push seen by a prescriber's chart) makes the alerts on it true
  but is not counted when missed;
* delay = event time of the first matching alert − incident start (median over detected incidents);
* false alarms per 10,000 events = unmatched alerts / events × 10,000;
* for the cold chain's dynamics rule, whose budget is per device: its unmatched alerts per device-week
  (``device_weeks``: the devices × the weeks simulated; every device follows its daily rhythm);
* an incident still running when the run ends (``until``) and not detected is *incomplete*: neither
  found nor missed (its decisive event — a discharge, a deadline — may lie after the end), counted
  apart.

Every scenario is reported, including those nothing detects (recall 0).

>>> truth = [Incident("fridge_power_loss", "device", "F1", 0.0, 3600.0, ("coldchain.excursion",)),
...          Incident("fridge_power_loss", "device", "F2", 0.0, 3600.0, ("coldchain.excursion",)),
...          Incident("phantom_bed", "institution", "H1", 0.0, 86400.0, ("claim.phantom_bed",))]
>>> alerts = [{"detector": "coldchain.excursion", "entity": {"kind": "device", "id": "F1"}, "t": 600.0},
...           {"detector": "coldchain.excursion", "entity": {"kind": "device", "id": "F9"}, "t": 900.0}]
>>> report = score(truth, alerts, events=20_000)
>>> [(s.scenario, s.incidents, s.detected, s.recall, s.precision, s.median_delay_s) for s in report.scenarios]
[('fridge_power_loss', 2, 1, 0.5, 0.5, 600.0), ('phantom_bed', 1, 0, 0.0, None, None)]
>>> report.detectors["coldchain.excursion"].precision, report.false_alarms_per_10k
(0.5, 0.5)
"""
from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class Incident:
    scenario: str
    entity_kind: str
    entity_id: str
    start_t: float
    end_t: float
    detectors: tuple[str, ...]
    benign: bool = False  # a look-alike 合理情形: an alert on it is a false alarm, and it is counted apart
    #: False: an alert on it is true, a miss is not counted (a department's push is also each prescriber's, whose own
    #: chart may or may not see past the department rising with them)
    required: bool = True


@dataclass
class LookAlikeScore:
    """A benign look-alike's instances and those a rule alarmed on (each alarm is also a false alarm)."""

    scenario: str
    instances: int
    alarmed: int
    detectors: tuple[str, ...] = ()


@dataclass
class ScenarioScore:
    scenario: str
    incidents: int
    detected: int
    recall: float
    median_delay_s: float | None
    precision: float | None = None
    detectors: tuple[str, ...] = ()
    incomplete: int = 0  # still running when the run ended and not detected: left out of the incidents above


@dataclass
class DetectorScore:
    detector: str
    alerts: int
    true_alerts: int
    precision: float | None


@dataclass
class Report:
    scenarios: list[ScenarioScore]
    detectors: dict[str, DetectorScore]
    events: int
    false_alarms: int
    false_alarms_per_10k: float
    unmatched_examples: list[dict[str, Any]] = field(default_factory=list)
    device_weeks: float = 0.0
    dynamics_false_alarms: int = 0
    look_alikes: list[LookAlikeScore] = field(default_factory=list)

    @property
    def dynamics_per_device_week(self) -> float | None:
        return self.dynamics_false_alarms / self.device_weeks if self.device_weeks else None


DYNAMICS = "coldchain.abnormal_dynamics"


def score(truth: Iterable[Incident], alerts: Iterable[dict[str, Any]], events: int,
          grace_s: float = 86400.0, until: float | None = None, device_weeks: float = 0.0) -> Report:
    """Alerts are dicts with ``detector``, ``entity`` {kind, id} and ``t`` (event time, epoch s); ``until``: when
    the run's events end.

    >>> truth = [Incident("split", "institution", "H1", 0.0, 100.0, ("x",)),
    ...          Incident("split", "institution", "H2", 0.0, 900.0, ("x",))]
    >>> [s] = score(truth, [], events=10, until=500.0).scenarios
    >>> s.incidents, s.detected, s.recall, s.incomplete
    (1, 0, 0.0, 1)
    """
    incidents = list(truth)
    by_entity: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, inc in enumerate(incidents):
        by_entity[(inc.entity_kind, inc.entity_id)].append(i)
    first_hit: dict[int, float] = {}
    alarmed: set[int] = set()  # look-alikes an alert fell on
    per_detector: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    unmatched: list[dict[str, Any]] = []
    for a in alerts:
        key = (a["entity"]["kind"], a["entity"]["id"])
        stats = per_detector[a["detector"]]
        stats[0] += 1
        matched = False
        for i in by_entity.get(key, ()):
            inc = incidents[i]
            if a["detector"] in inc.detectors and inc.start_t <= a["t"] <= inc.end_t + grace_s:
                if inc.benign:
                    alarmed.add(i)
                    continue
                matched = True
                first_hit[i] = min(first_hit.get(i, a["t"]), a["t"])
        if matched:
            stats[1] += 1
        else:
            unmatched.append(a)
    scenarios: dict[str, list[int]] = defaultdict(list)
    benign: dict[str, list[int]] = defaultdict(list)
    for i, inc in enumerate(incidents):
        if inc.required:
            (benign if inc.benign else scenarios)[inc.scenario].append(i)
    look_alikes = [LookAlikeScore(name, len(ids), sum(1 for i in ids if i in alarmed),
                                  tuple(sorted({d for i in ids for d in incidents[i].detectors})))
                   for name, ids in sorted(benign.items())]
    scenario_scores = []
    for name in sorted(scenarios):
        ids = [i for i in scenarios[name] if until is None or incidents[i].end_t <= until or i in first_hit]
        incomplete = len(scenarios[name]) - len(ids)
        if not ids:
            scenario_scores.append(ScenarioScore(name, 0, 0, 0.0, None, None, (), incomplete))
            continue
        delays = [first_hit[i] - incidents[i].start_t for i in ids if i in first_hit]
        expected = tuple(sorted({d for i in ids for d in incidents[i].detectors}))
        n_alerts = sum(per_detector[d][0] for d in expected if d in per_detector)
        n_true = sum(per_detector[d][1] for d in expected if d in per_detector)
        scenario_scores.append(ScenarioScore(name, len(ids), len(delays), len(delays) / len(ids),
                                             statistics.median(delays) if delays else None,
                                             n_true / n_alerts if n_alerts else None, expected, incomplete))
    detectors = {d: DetectorScore(d, n, ok, ok / n if n else None) for d, (n, ok) in sorted(per_detector.items())}
    return Report(scenario_scores, detectors, events, len(unmatched),
                  len(unmatched) * 10_000 / events if events else 0.0, unmatched[:20], device_weeks,
                  sum(1 for a in unmatched if a["detector"] == DYNAMICS), look_alikes)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def markdown(report: Report) -> str:
    """The per-scenario table, as the README and `zhijian evaluate` show it."""
    lines = ["| scenario | incidents | detected | recall | precision | median delay | expected detectors |",
             "|---|---|---|---|---|---|---|"]
    for s in report.scenarios:
        p = "–" if s.precision is None else f"{s.precision:.2f}"
        running = f" (+{s.incomplete} running at the end)" if s.incomplete else ""
        lines.append(f"| {s.scenario} | {s.incidents}{running} | {s.detected} | {s.recall:.2f} | {p} | "
                     f"{_duration(s.median_delay_s)} | {', '.join(s.detectors)} |")
    lines += ["", "| detector | alerts | matching an incident | precision |", "|---|---|---|---|"]
    for d in report.detectors.values():
        p = "–" if d.precision is None else f"{d.precision:.2f}"
        lines.append(f"| {d.detector} | {d.alerts} | {d.true_alerts} | {p} |")
    if report.look_alikes:
        lines += ["", "| look-alike (benign) | instances | alarmed | quiet | rules it resembles |", "|---|---|---|---|---|"]
        for x in report.look_alikes:
            quiet = (x.instances - x.alarmed) / x.instances if x.instances else 1.0
            lines.append(f"| {x.scenario} | {x.instances} | {x.alarmed} | {quiet:.2f} | {', '.join(x.detectors)} |")
    lines.append(f"\nfalse alarms: {report.false_alarms} over {report.events} events "
                 f"= {report.false_alarms_per_10k:.2f} per 10,000")
    if report.device_weeks:
        lines.append(f"cold-chain dynamics false alarms: {report.dynamics_false_alarms} over "
                     f"{report.device_weeks:.0f} device-weeks = {report.dynamics_per_device_week:.3f} per device-week "
                     "(budget 1; devices follow daily rhythms)")
    return "\n".join(lines)


def report_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    return {
        "scenarios": [dataclasses.asdict(s) for s in report.scenarios],
        "detectors": {k: dataclasses.asdict(v) for k, v in report.detectors.items()},
        "false_alarms": report.false_alarms,
        "false_alarms_per_10k": round(report.false_alarms_per_10k, 4),
        "device_weeks": round(report.device_weeks, 1),
        "dynamics_false_alarms": report.dynamics_false_alarms,
        "look_alikes": [dataclasses.asdict(x) for x in report.look_alikes],
        "unmatched_examples": report.unmatched_examples,
    }

"""zhijian's Grafana dashboards, as code: ``python deploy/grafana/generate.py`` writes
``deploy/grafana/dashboards/*.json`` (committed; a test checks they are up to date).

Built with grafana-foundation-sdk (pinned in the ``dashboards`` extra). Every panel has a title,
a description (the question it answers) and a unit; every rate uses ``$__rate_interval``; the
datasource is the provisioned Prometheus with the fixed uid ``zhijian-prometheus``; dashboard
uids are fixed so links survive regeneration. Labels are the worker's bounded ones only.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.dashboard import GridPos

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="zhijian-prometheus")
RI = "$__rate_interval"


@dataclass
class Q:
    expr: str
    legend: str = ""


@dataclass
class P:
    """One panel: what it shows, the question it answers, its unit and queries."""

    title: str
    description: str
    unit: str
    queries: list[Q]
    kind: str = "timeseries"  # or "stat"
    width: int = 12


@dataclass
class D:
    uid: str
    title: str
    description: str
    panels: list[P] = field(default_factory=list)


DASHBOARDS = [
    D("zhijian-overview", "智监 Supervision overview",
      "For the platform's leaders: what the four streams bring in and what zhijian raises from them.", [
          P("Events judged per second", "How much each stream (prescriptions, claims, waste manifests, cold-chain "
            "readings) brings in, valid events only.", "ops",
            [Q(f'sum by (stream) (rate(zhijian_events_total[{RI}]))', "{{stream}}")]),
          P("New alerts per second by stream and tier", "Where the risk is: violations 违规, fraud 欺诈骗保 and "
            "safety (cold chain, waste) alerts raised per stream.", "ops",
            [Q(f'sum by (stream, tier) (rate(zhijian_alerts_total[{RI}]))', "{{stream}} {{tier}}")]),
          P("Alerts raised (range)", "How many alerts the range holds, per stream.", "short",
            [Q('sum by (stream) (increase(zhijian_alerts_total[$__range]))', "{{stream}}")], kind="stat"),
          P("Money at stake named by alerts (range)", "The yuan amounts the claims alerts name in the range: "
            "duplicated, overcharged or the suspicious claims' totals.", "currencyCNY",
            [Q('sum(increase(zhijian_alert_amount_yuan_total[$__range]))', "yuan")], kind="stat"),
          P("Events by region (county)", "Which counties send data, and whether one went quiet.", "ops",
            [Q(f'sum by (region) (rate(zhijian_region_events_total[{RI}]))', "{{region}}")], width=24),
      ]),
    D("zhijian-fraud", "智监 Insurance anti-fraud 医保基金监管",
      "For anti-fraud analysts: which rules fire on claims and prescriptions, how hard, and the money involved.", [
          P("Claims alerts per second by rule", "Which claim rules fire (duplicate charge, unbundling, card "
            "misuse, split admission, phantom bed …).", "ops",
            [Q(f'sum by (detector) (rate(zhijian_alerts_total{{stream="claim"}}[{RI}]))', "{{detector}}")]),
          P("Prescription alerts per second by rule", "Which prescription rules fire (over-supply, too many drugs, "
            "controlled drugs, doctor shopping, excess usage …).", "ops",
            [Q(f'sum by (detector) (rate(zhijian_alerts_total{{stream="prescription"}}[{RI}]))', "{{detector}}")]),
          P("Alerts by tier", "Violations 违规 (fine 1–2×) against fraud 欺诈骗保 (fine 2–5×).", "ops",
            [Q(f'sum by (tier) (rate(zhijian_alerts_total{{stream=~"claim|prescription"}}[{RI}]))', "{{tier}}")]),
          P("Money at stake per second by rule", "The yuan amounts named by claims alerts, per rule.",
            "currencyCNY",
            [Q(f'sum by (detector) (rate(zhijian_alert_amount_yuan_total[{RI}]))', "{{detector}}")]),
          P("Claims by type", "Outpatient, inpatient, pharmacy … settlements judged per second.", "ops",
            [Q(f'sum by (kind) (rate(zhijian_events_by_kind_total{{stream="claim"}}[{RI}]))', "{{kind}}")]),
          P("Alerts per 10,000 claims", "How often claims raise an alert: a jump means a wave of fraud or a "
            "changed rule.", "short",
            [Q(f'1e4 * sum(rate(zhijian_alerts_total{{stream="claim"}}[{RI}])) / '
               f'clamp_min(sum(rate(zhijian_events_total{{stream="claim"}}[{RI}])), 1e-9)', "per 10k claims")]),
      ]),
    D("zhijian-coldchain", "智监 Vaccine cold chain 疫苗冷链",
      "For cold-chain operators: open excursions, silent loggers and breaches of WHO limits.", [
          P("Open excursions", "How many fridges, cold rooms or vehicles are out of 2–8 °C now.", "short",
            [Q('sum(zhijian_open_alerts{detector="coldchain.excursion"})', "open")], kind="stat", width=6),
          P("Oldest open excursion", "How long (in the devices' own time) the oldest open excursion has "
            "lasted; past an hour the on-call operator is alerted.", "s",
            [Q('max(zhijian_oldest_open_alert_age_seconds{detector="coldchain.excursion"})', "oldest")],
            kind="stat", width=6),
          P("Silent loggers", "How many loggers have sent nothing for longer than their reporting interval allows.",
            "short", [Q('sum(zhijian_open_alerts{detector="coldchain.sensor_silent"})', "silent")], kind="stat",
            width=6),
          P("Breaches (range)", "Excursions past the WHO alarm limits in the range (heat 10 h, freeze 60 min).",
            "short", [Q('sum(increase(zhijian_alerts_total{detector="coldchain.breach"}[$__range]))', "breaches")],
            kind="stat", width=6),
          P("Cold-chain alerts per second by kind", "Excursions, breaches, silences and abnormal dynamics.", "ops",
            [Q(f'sum by (detector) (rate(zhijian_alerts_total{{stream="telemetry"}}[{RI}]))', "{{detector}}")]),
          P("Readings per second by device kind", "Fridges, cold rooms, vehicles and carriers reporting.", "ops",
            [Q(f'sum by (kind) (rate(zhijian_events_by_kind_total{{stream="telemetry"}}[{RI}]))', "{{kind}}")]),
          P("Readings per second by county", "A county that drops to zero lost its network, not one fridge.", "ops",
            [Q(f'sum by (region) (rate(zhijian_region_events_total{{stream="telemetry"}}[{RI}]))', "{{region}}")],
            width=24),
      ]),
    D("zhijian-waste", "智监 Medical waste 医疗废物",
      "For waste supervisors: manifests open and overdue, weight discrepancies, unlicensed flows.", [
          P("Manifests open (generated, not yet disposed)", "Manifests the platform saw generated minus those "
            "it saw disposed, since the workers started.", "short",
            [Q('sum(zhijian_events_by_kind_total{stream="waste", kind="generated"}) - '
               'sum(zhijian_events_by_kind_total{stream="waste", kind="disposed"})', "open")], kind="stat", width=8),
          P("Overdue manifests (range)", "Waste stored past 48 h, and manifests handed over but never received.",
            "short", [Q('sum by (detector) (increase(zhijian_alerts_total{detector=~"waste.storage_overdue|'
                        'waste.manifest_not_closed"}[$__range]))', "{{detector}}")], kind="stat", width=8),
          P("Weight discrepancies (range)", "Manifests received more than 10 % lighter or heavier than handed "
            "over.", "short",
            [Q('sum(increase(zhijian_alerts_total{detector="waste.weight_discrepancy"}[$__range]))', "discrepancies")],
            kind="stat", width=8),
          P("Manifest events per second by step", "Generated → handed over → received → disposed.", "ops",
            [Q(f'sum by (kind) (rate(zhijian_events_by_kind_total{{stream="waste"}}[{RI}]))', "{{kind}}")]),
          P("Waste alerts per second by rule", "Which waste rules fire.", "ops",
            [Q(f'sum by (detector) (rate(zhijian_alerts_total{{stream="waste"}}[{RI}]))', "{{detector}}")]),
      ]),
    D("zhijian-pipeline", "智监 Pipeline health",
      "For the on-call team: is zhijian keeping up, refusing input, or rebalancing?", [
          P("Workers up", "Workers answering scrapes.", "short",
            [Q('sum(up{job="zhijian-worker"})', "up")], kind="stat", width=6),
          P("Consumer lag", "Records written to an input topic and not yet processed, summed over partitions.",
            "short", [Q('sum by (topic) (zhijian_consumer_lag_records)', "{{topic}}")], width=18),
          P("Events per second by stream", "Throughput of the workers, valid events.", "ops",
            [Q(f'sum by (stream) (rate(zhijian_events_total[{RI}]))', "{{stream}}")]),
          P("Processing latency p99", "From a record's Kafka timestamp to the end of its processing, 99th "
            "percentile per stream.", "s",
            [Q(f'histogram_quantile(0.99, sum by (le, stream) (rate(zhijian_processing_latency_seconds_bucket[{RI}])))',
               "{{stream}}")]),
          P("Dead letters per second by reason", "Records refused and sent to the dead-letter topic, by stream "
            "and reason.", "ops",
            [Q(f'sum by (stream, reason) (rate(zhijian_invalid_records_total[{RI}]))', "{{stream}} {{reason}}")]),
          P("Rebalances (range)", "Partition assignments the workers received: every start, stop or crash of "
            "a worker causes one.", "short",
            [Q('sum(increase(zhijian_rebalances_total[$__range]))', "rebalances")], kind="stat"),
          P("Partitions owned per worker", "How the input partitions are shared between workers.", "short",
            [Q('sum by (instance) (zhijian_assigned_partitions)', "{{instance}}")]),
          P("Detector state keys", "Keys (patients, manifests, devices) held in the keyed detectors' state, per "
            "stream: grows with the active population, shrinks as idle keys expire.", "short",
            [Q('sum by (stream) (zhijian_state_keys)', "{{stream}}")]),
          P("Checkpoint and restore time", "p99 time to queue a checkpoint's changelog records, and the time the "
            "last restore of state from the changelogs took.", "s",
            [Q(f'histogram_quantile(0.99, sum by (le) (rate(zhijian_checkpoint_seconds_bucket[{RI}])))',
               "checkpoint p99"),
             Q('max(zhijian_state_restore_seconds)', "last restore")]),
      ]),
]


def _panel(p: P, x: int, y: int, height: int):
    if p.kind == "timeseries":
        builder = timeseries.Panel()
    else:  # a stat shows the latest value of the range
        builder = stat.Panel().reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]))
    builder = (builder.title(p.title).description(p.description).unit(p.unit).datasource(DATASOURCE)
               .grid_pos(GridPos(h=height, w=p.width, x=x, y=y)))
    for i, q in enumerate(p.queries):
        target = prometheus.Dataquery().expr(q.expr).legend_format(q.legend or "__auto").ref_id(chr(65 + i))
        builder = builder.with_target(target.datasource(DATASOURCE))
    return builder


def build(d: D) -> dict:
    board = (gd.Dashboard(d.title).uid(d.uid).description(d.description).tags(["zhijian", "generated"])
             .refresh("30s").time("now-6h", "now").timezone("browser").editable())
    x = y = row_height = 0
    for p in d.panels:
        height = 5 if p.kind == "stat" else 8
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        board = board.with_panel(_panel(p, x, y, height))
        x += p.width
        row_height = max(row_height, height)
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{d.uid}.json": json.dumps(build(d), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for d in DASHBOARDS}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

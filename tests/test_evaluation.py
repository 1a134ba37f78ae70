"""Detection-quality arithmetic on a hand-made case, where every number can be checked by hand."""
from streams.lab.scoring import Incident, markdown, score

H = 3600.0


def alert(detector, kind, entity, t):
    return {"detector": detector, "entity": {"kind": kind, "id": entity}, "t": t}


def test_recall_precision_delay_and_false_alarms_by_hand():
    truth = [
        Incident("carrier_weight_loss", "carrier", "C1", 10 * H, 12 * H, ("waste.weight_discrepancy",)),
        Incident("storage_overdue", "institution", "H1", 0, 50 * H, ("waste.storage_overdue",)),
        Incident("storage_overdue", "institution", "H2", 0, 50 * H, ("waste.storage_overdue",)),
        Incident("storage_overdue", "institution", "H3", 0, 50 * H, ("waste.storage_overdue",)),
    ]
    alerts = [
        alert("waste.storage_overdue", "institution", "H1", 49 * H),   # delay 49 h
        alert("waste.storage_overdue", "institution", "H1", 55 * H),   # a second hit on H1: not a new detection
        alert("waste.storage_overdue", "institution", "H2", 48.5 * H),  # delay 48.5 h
        alert("waste.storage_overdue", "institution", "H9", 20 * H),   # no incident: false alarm
        alert("waste.storage_overdue", "institution", "H3", 200 * H),  # past window + 1-day grace: false alarm
        alert("prescription.over_supply", "prescriber", "D1", 1 * H),  # a detector no scenario expects
    ]
    r = score(truth, alerts, events=40_000)
    by = {s.scenario: s for s in r.scenarios}
    assert (by["storage_overdue"].incidents, by["storage_overdue"].detected) == (3, 2)
    assert by["storage_overdue"].recall == 2 / 3
    assert by["storage_overdue"].median_delay_s == 48.75 * H
    assert by["carrier_weight_loss"].recall == 0.0 and by["carrier_weight_loss"].median_delay_s is None
    d = r.detectors["waste.storage_overdue"]
    assert (d.alerts, d.true_alerts, d.precision) == (5, 3, 0.6)
    assert r.detectors["prescription.over_supply"].precision == 0.0
    assert r.false_alarms == 3 and r.false_alarms_per_10k == 0.75
    assert by["storage_overdue"].precision == 0.6  # its detector's 3 matching alerts of 5
    assert by["carrier_weight_loss"].precision is None  # its detector raised nothing
    table = markdown(r)
    assert "| storage_overdue | 3 | 2 | 0.67 | 0.60 | 48.8 h | waste.storage_overdue |" in table
    assert "| carrier_weight_loss | 1 | 0 | 0.00 | – | – | waste.weight_discrepancy |" in table


def test_wrong_detector_on_the_right_entity_does_not_count():
    truth = [Incident("fridge_freeze", "device", "F1", 0, H, ("coldchain.breach",))]
    r = score(truth, [alert("coldchain.excursion", "device", "F1", 10)], events=100)
    assert r.scenarios[0].detected == 0 and r.false_alarms == 1


def test_an_alert_on_a_look_alike_is_a_false_alarm_counted_per_look_alike():
    truth = [Incident("card_two_places", "patient", "Pa", 0, H, ("claim.two_places",)),
             Incident("pharmacy_at_the_gate", "patient", "Pb", 0, H, ("claim.two_places",), benign=True),
             Incident("pharmacy_at_the_gate", "patient", "Pc", 0, H, ("claim.two_places",), benign=True)]
    r = score(truth, [alert("claim.two_places", "patient", "Pa", 60), alert("claim.two_places", "patient", "Pb", 60)],
              events=10_000)
    assert [s.scenario for s in r.scenarios] == ["card_two_places"] and r.scenarios[0].recall == 1.0
    [x] = r.look_alikes
    assert (x.scenario, x.instances, x.alarmed) == ("pharmacy_at_the_gate", 2, 1)
    assert r.false_alarms == 1 and r.detectors["claim.two_places"].precision == 0.5
    assert "| pharmacy_at_the_gate | 2 | 1 | 0.50 | claim.two_places |" in markdown(r)

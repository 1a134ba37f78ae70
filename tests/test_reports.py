"""Monthly reports (issue 23 items 1 and 2): the stewardship rates and the 双排名 ranking of every institution,
published by the detectors when a month closes (alert or not), carried out of a re-keyed receiver the way the
worker takes them, and shown on the workbench's reports page with what is over its target marked."""
from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta

from models.contracts.alert import Source
from models.engine.rekey import Forwarder, PartitionedReceiver
from models.engine.runtime import Runtime
from models.rules.claims.antimicrobial_stewardship import StewardshipDetector, StewardshipLimits
from models.rules.prescription.double_ranking import DoubleRankingConfig, DoubleRankingDetector
from streams.workbench.console import Console
from streams.workbench.reports import Reports
from streams.workbench.store import Store

DRUGS = {"AMOX": {"atc": "J01CA04", "grams_per_unit": 0.5, "route": "O"},
         "CRO": {"atc": "J01DD04", "grams_per_unit": 1.0, "route": "P"}}


def stewardship_reports() -> list:
    """Two institutions' October: H1 over the outpatient target (30 %), H2 within every target, H3 too small to
    judge; their reports once 1 November has closed."""
    rt = Runtime([StewardshipDetector(StewardshipLimits(drugs=DRUGS))])
    n = 0

    def claim(inst, month, day, kind, codes, qty=6, **extra):
        nonlocal n
        n += 1
        e = {"claim_id": f"C{n}", "institution_id": inst, "region": "310104", "claim_type": kind,
             "event_time": f"{month}-{day:02d}T10:00:00+08:00", "patient": f"P{n}",
             "items": [{"item_code": c, "quantity": qty, "amount": 10.0} for c in codes], **extra}
        e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
        return rt.process(e, Source("zhijian.claims", 0, n, e["claim_id"]))

    alerts = []
    for day in range(1, 31):
        for i in range(10):
            alerts += claim("H1", "2026-10", day, "outpatient", ["AMOX"] if i < 3 else ["IBU"])  # 30 %
            alerts += claim("H2", "2026-10", day, "outpatient", ["AMOX"] if i < 1 else ["IBU"])  # 10 %
        alerts += claim("H2", "2026-10", day, "inpatient", ["CRO"] if day % 2 else ["OME"], qty=4,
                        admission_date=f"2026-10-{max(1, day - 4):02d}", discharge_date=f"2026-10-{day:02d}")
        if day % 3 == 0:
            alerts += claim("H3", "2026-10", day, "outpatient", ["AMOX"])  # 10 visits, all with it: not judged
    for inst in ("H1", "H2", "H3"):
        alerts += claim(inst, "2026-11", 1, "outpatient", ["IBU"])
        alerts += claim(inst, "2026-11", 2, "outpatient", ["IBU"], event_time="2026-11-02T07:00:00+08:00")
    alerts += rt.advance(datetime.fromisoformat("2026-11-03T00:00:00+08:00").timestamp())
    assert [(a.entity_id, a.numbers["indicator"]) for a in alerts] == [("H1", "outpatient_rate")]
    return rt.reports


def test_every_institution_s_month_is_published_over_its_targets_or_not():
    reports = stewardship_reports()
    by = {r.institution_id: r for r in reports}
    assert sorted(by) == ["H1", "H2", "H3"] and {r.period for r in reports} == {"2026-10"}
    assert by["H1"].body["outpatient_rate"] == {"value": 0.3, "numerator": 90, "denominator": 300, "target": 0.2,
                                                "judged": True}
    h2 = by["H2"].body
    assert h2["outpatient_rate"]["value"] == 0.1 and h2["inpatient_use_rate"]["value"] == 0.5
    # 15 stays of 4 vials of 1 g ceftriaxone (DDD 2 g): 30 DDD over the 111 patient-days of the 30 discharged
    assert (h2["use_intensity"]["numerator"], h2["use_intensity"]["denominator"]) == (30.0, 111)
    assert by["H3"].body["outpatient_rate"]["judged"] is False and by["H3"].key == b"antimicrobial_stewardship:H3:2026-10"


def test_a_receiver_hands_the_reports_of_its_detectors_to_the_worker():
    """Re-keyed by institution, as the worker runs 双排名: the receiver collects what its runtime published, and the
    worker takes them once (the runtime's list is emptied, not replaced: its contexts keep appending to it)."""
    detector = DoubleRankingDetector(DoubleRankingConfig(top_drugs=2, min_days=1))
    receiver = PartitionedReceiver([detector], sources=1)
    fwd = Forwarder([detector], "zhijian.prescriptions", 0, 1)
    n = 0
    for month, days in (("2026-10", 31), ("2026-11", 2)):
        for d in range(1, days + 1):
            n += 1
            e = {"prescription_id": f"RX{n}", "institution_id": "H1", "prescriber_id": "D1", "region": "310101",
                 "event_time": f"{month}-{d:02d}T10:00:00+08:00",
                 "items": [{"drug_code": "A", "amount": 10.0}, {"drug_code": "B", "amount": 5.0}]}
            e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
            fwd.add(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"]))
    for target, envelope in fwd.flush(True):
        receiver.receive(target, envelope)
    [report] = receiver.take_reports()
    assert (report.kind, report.institution_id, report.period) == ("double_ranking", "H1", "2026-10")
    assert [(r["drug"], r["amount"], r["per_day"], r["prescribers"]) for r in report.body["ranking"]] == [
        ("A", 310.0, 10.0, [["D1", 310.0]]), ("B", 155.0, 5.0, [["D1", 155.0]])]
    assert receiver.take_reports() == []  # taken once
    for rt in receiver.tasks.values():
        assert rt.runtime.reports == []


def _pages(tmp_path, reports, *paths: str) -> list[str]:
    """The pages at ``paths`` of a workbench holding ``reports``, as an analyst signed in sees them (Chinese)."""
    from aiohttp.test_utils import TestClient, TestServer

    from streams.workbench.web import make_app

    store = Store(str(tmp_path / "c.db"))
    store.add_user("li", "analyst", "li's long password")
    console = Console(store)
    for r in reports:
        console.reports.add(r.key, r.to_json())

    async def run():
        client = TestClient(TestServer(make_app(console)))
        await client.start_server()
        try:
            await client.post("/login", data={"user": "li", "password": "li's long password"})
            return [await (await client.get(path)).text() for path in paths]
        finally:
            await client.close()

    return asyncio.run(run())


def test_the_reports_page_shows_the_rates_against_the_targets_and_the_ranking(tmp_path):
    ranking = DoubleRankingDetector(DoubleRankingConfig(top_drugs=2, top_prescribers=1))
    rt = Runtime([ranking])
    n = 0
    for month, days, c_amount in (("2026-09", 30, 20.0), ("2026-10", 31, 400.0), ("2026-11", 1, 0.0)):
        for d in range(1, days + 1):
            for doc, drug, amount in (("D1", "A", 360.0), ("D1", "B", 240.0), ("D2", "C", c_amount)):
                if amount:
                    n += 1
                    e = {"prescription_id": f"RX{n}", "institution_id": "H1", "prescriber_id": doc,
                         "region": "310104", "event_time": f"{month}-{d:02d}T10:00:00+08:00",
                         "items": [{"drug_code": drug, "amount": amount}]}
                    e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
                    rt.process(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"]))
    rt.advance(datetime.fromisoformat("2026-11-02T00:00:00+08:00").timestamp())
    assert [r.period for r in rt.reports] == ["2026-09", "2026-10"]
    page, september, nothing = _pages(tmp_path, stewardship_reports() + rt.reports, "/reports",
                                      "/reports?month=2026-09&institution=H1", "/reports?month=2026-10&institution=H9")
    assert "抗菌药物临床应用指标" in page and "双排名" in page  # Chinese by default
    assert re.search(r'<strong class="month current">2026-10</strong>', page)  # the latest month
    rows = re.findall(r'<tr class="institution" data-institution="(\w+)">', page)
    assert rows == ["H1", "H2", "H3"]  # the one over a target first
    h1 = page[page.index('data-institution="H1"'):page.index('data-institution="H2"')]
    assert '<td class="outpatient_rate over" data-value="0.3" title="90 / 300">30.0 % <small>≤ 20 %</small>' in h1
    h2 = page[page.index('data-institution="H2"'):page.index('data-institution="H3"')]
    assert " over" not in h2 and 'class="use_intensity" data-value="27.03" title="30 / 111"' in h2
    h3 = page[page.index('data-institution="H3"'):]
    assert 'class="outpatient_rate unjudged"' in h3 and "不判定" in h3
    # the ranking of October: C entered at rank 1 (400 a day against 20), A second; B fell out
    section = page[page.index('<section class="ranking" data-institution="H1">'):]
    drugs = re.findall(r'<tr class="drug( new)?" data-drug="(\w)">', section)
    assert drugs == [(" new", "C"), ("", "A")]
    assert "12,400.00" in section and "D2 (12,400)" in section and ">400<" in section and ">20<" in section
    assert "no institution" not in september and 'data-drug="B"' in september and 'class="drug new"' not in september
    assert 'id="no-ranking"' in nothing
    book = Reports()
    for r in rt.reports:
        book.add(r.key, r.to_json())
    book.add(b"double_ranking:H1:2026-10", None)  # a tombstone removes it
    assert book.rankings("2026-10") == [] and len(book.rankings("2026-09")) == 1


def test_each_department_s_rates_come_from_the_prescriptions_and_are_shown_under_its_institution(tmp_path):
    """Claims name no department: prescription.antimicrobial_departments counts each department's outpatient and
    emergency prescriptions with an antibacterial (a prescription sent twice once, an inpatient one not at all) and
    publishes the month; the page lists the departments, the institution with one over a target first."""
    from models.rules.prescription.antimicrobial_departments import DepartmentRatesDetector

    rt = Runtime([DepartmentRatesDetector()])
    n = 0
    for day in range(1, 31):
        for inst, dept, kind, per_day, with_j01 in (("H1", "IM", "outpatient", 5, 1), ("H2", "RESP", "outpatient", 6, 2),
                                                    ("H2", "PED", "outpatient", 5, 0), ("H2", "EM", "emergency", 4, 1),
                                                    ("H2", "SUR", "inpatient", 3, 3)):
            for i in range(per_day):
                n += 1
                e = {"prescription_id": f"RX{n}", "institution_id": inst, "department": dept, "region": "310104",
                     "visit_type": kind, "event_time": f"2026-10-{day:02d}T{8 + i:02d}:00:00+08:00",
                     "items": [{"drug_code": "X", "atc_code": "J01DD04" if i < with_j01 else "N02BE01"}]}
                e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
                copies = 2 if i == 0 else 1  # the first of each day delivered twice: counted once
                for _ in range(copies):
                    assert rt.process(e, Source("zhijian.prescriptions", 0, n, e["prescription_id"])) == []
    assert rt.advance(datetime.fromisoformat("2026-11-01T06:30:00+08:00").timestamp()) == []
    by = {r.institution_id: r.body["departments"] for r in rt.reports}
    assert by["H1"] == {"IM": {"outpatient_rate": {"value": 0.2, "numerator": 30, "denominator": 150, "target": 0.2,
                                                   "judged": True}}}
    assert set(by["H2"]) == {"RESP", "PED", "EM"}  # the inpatient prescriptions are not counted
    assert by["H2"]["RESP"]["outpatient_rate"]["value"] == round(60 / 180, 4)
    assert by["H2"]["EM"]["emergency_rate"] == {"value": 0.25, "numerator": 30, "denominator": 120, "target": 0.4,
                                                "judged": True}
    [page] = _pages(tmp_path, rt.reports, "/reports?month=2026-10")
    rows = re.findall(r'<tr class="department" data-institution="(\w+)" data-department="(\w+)">', page)
    assert rows == [("H2", "RESP"), ("H2", "EM"), ("H2", "PED"), ("H1", "IM")]  # RESP over 20 %: first
    resp = page[page.index('data-department="RESP"'):page.index('data-department="EM"')]
    assert 'class="outpatient_rate over" data-value="0.3333" title="60 / 180">33.3 %' in resp
    im = page[page.index('data-department="IM"'):]
    assert 'class="outpatient_rate" data-value="0.2"' in im  # at the target, not over it


def test_a_month_s_reports_download_as_a_workbook_with_the_numbers_of_the_page(tmp_path):
    """The month the page shows, as a workbook a supervisor files: each institution's indicators with numerator,
    denominator and target, over or not judged as the page marks them (in the reader's language), the departments
    and the 双排名 ranking; a month without reports is a 404 naming the months there are."""
    import io
    import zipfile
    from xml.etree import ElementTree

    from aiohttp.test_utils import TestClient, TestServer

    from streams.workbench.web import make_app

    store = Store(str(tmp_path / "c.db"))
    store.add_user("li", "analyst", "li's long password")
    console = Console(store)
    for r in stewardship_reports():
        console.reports.add(r.key, r.to_json())
    console.reports.add(b"double_ranking:H1:2026-10", b'{"kind": "double_ranking", "institution_id": "H1", '
                        b'"period": "2026-10", "body": {"ranking": [{"drug": "C", "amount": 12400.0, "per_day": 400.0,'
                        b' "previous_per_day": 20.0, "new": true, "prescribers": [["D2", 12400.0]]}]}}')

    async def run():
        client = TestClient(TestServer(make_app(console)))
        await client.start_server()
        try:
            await client.post("/login", data={"user": "li", "password": "li's long password"})
            page = await (await client.get("/reports")).text()
            got = await client.get("/reports.xlsx?month=2026-10")
            missing = await client.get("/reports.xlsx?month=2025-01")
            return page, got.status, got.headers.get("Content-Disposition"), await got.read(), missing.status, \
                await missing.text()
        finally:
            await client.close()

    page, status, disposition, body, missing, why = asyncio.run(run())
    assert 'id="reports-xlsx" href="/reports.xlsx?month=2026-10"' in page
    assert status == 200 and disposition == 'attachment; filename="reports-2026-10.xlsx"'
    assert missing == 404 and "2026-10" in why
    x = zipfile.ZipFile(io.BytesIO(body))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    strings = [si.findtext("m:t", namespaces=ns) for si in ElementTree.fromstring(x.read("xl/sharedStrings.xml"))]

    def rows(n):
        sheet = ElementTree.fromstring(x.read(f"xl/worksheets/sheet{n}.xml"))
        out = []
        for row in sheet.iter(f"{{{ns['m']}}}row"):
            cells = []
            for c in row.iter(f"{{{ns['m']}}}c"):
                v = c.findtext("m:v", namespaces=ns)
                cells.append(strings[int(v)] if c.get("t") == "s" else float(v))
            out.append(cells)
        return out

    stewardship, departments, ranking = rows(1), rows(2), rows(3)
    assert stewardship[0][:4] == ["机构", "地区", "门诊使用率", "门诊使用率: 分子"]  # the reader's language
    by = {r[0]: r for r in stewardship[1:]}
    assert [r[0] for r in stewardship[1:]] == ["H1", "H2", "H3"]  # over a target first, as on the page
    assert by["H1"][2:7] == [0.3, 90.0, 300.0, 0.2, "超标"]
    assert by["H3"][6] == "不判定" and by["H2"][6] == "是"
    assert departments == [departments[0]]  # no department report this month: the header alone
    assert ranking[1] == ["H1", 1.0, "C", "新进", 12400.0, 400.0, 20.0, "D2 (12,400)"]


def test_stays_that_name_their_department_give_its_inpatient_rates_beside_the_prescriptions_rates(tmp_path):
    """出院科别: a stay discharged from a named department counts for it too. H4's respiratory ward gives every
    patient ceftriaxone, its internal medicine one in five, and stays naming no department (counted for the
    institution only) all: the institution's inpatient use rate is over 60 %, its alert names the respiratory ward as
    the department over it, and the reports page shows the ward's inpatient cells beside its outpatient rate from
    the prescriptions."""
    from models.rules.prescription.antimicrobial_departments import DepartmentRatesDetector

    rt, rx = Runtime([StewardshipDetector(StewardshipLimits(drugs=DRUGS))]), Runtime([DepartmentRatesDetector()])
    alerts, n = [], 0
    for day in range(1, 31):
        stays = [("RESP", "CRO")] * 2 + [("IM", "CRO" if day % 5 == 0 else "OME")] * 2 + [(None, "CRO")]
        for dept, drug in stays:
            n += 1
            e = {"claim_id": f"C{n}", "institution_id": "H4", "region": "310104", "claim_type": "inpatient",
                 "event_time": f"2026-10-{day:02d}T10:00:00+08:00", "patient": f"P{n}",
                 "items": [{"item_code": drug, "quantity": 4, "amount": 10.0}],
                 "admission_date": (date(2026, 10, day) - timedelta(days=5)).isoformat(),
                 "discharge_date": f"2026-10-{day:02d}", **({"discharge_department": dept} if dept else {})}
            e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
            alerts += rt.process(e, Source("zhijian.claims", 0, n, e["claim_id"]))
            n += 1
            p = {"prescription_id": f"RX{n}", "institution_id": "H4", "department": "RESP", "region": "310104",
                 "visit_type": "outpatient", "event_time": f"2026-10-{day:02d}T09:00:00+08:00",
                 "items": [{"drug_code": "X", "atc_code": "J01DD04" if day % 10 == 0 else "N02BE01"}]}
            p["_t"] = datetime.fromisoformat(p["event_time"]).timestamp()
            rx.process(p, Source("zhijian.prescriptions", 0, n, p["prescription_id"]))
    nov = {"claim_id": "C-NOV", "institution_id": "H4", "region": "310104", "claim_type": "outpatient", "patient": "P0",
           "event_time": "2026-11-01T10:00:00+08:00", "items": [{"item_code": "OME", "quantity": 1, "amount": 1.0}]}
    alerts += rt.process({**nov, "_t": datetime.fromisoformat(nov["event_time"]).timestamp()},
                         Source("zhijian.claims", 0, n + 1, "C-NOV"))
    closed = datetime.fromisoformat("2026-11-02T07:00:00+08:00").timestamp()
    alerts += rt.advance(closed)
    rx.advance(closed)
    [report] = rt.reports
    body = report.body
    # 60 RESP stays all with it, 60 IM stays 12 with it, 30 stays naming no ward all: 102 of 150
    assert body["inpatient_use_rate"] == {"value": 0.68, "numerator": 102, "denominator": 150, "target": 0.6,
                                          "judged": True}
    assert body["departments"]["RESP"]["inpatient_use_rate"] == {"value": 1.0, "numerator": 60, "denominator": 60,
                                                                 "target": 0.6, "judged": True}
    assert body["departments"]["IM"]["inpatient_use_rate"]["value"] == 0.2
    assert body["departments"]["RESP"]["use_intensity"]["denominator"] == 300  # 60 stays of 5 days
    # 60 stays × 4 g of ceftriaxone (DDD 2 g): 120 DDD over 300 patient-days = 40: at the target, not over it
    assert body["departments"]["RESP"]["use_intensity"]["value"] == 40.0
    [a] = alerts
    assert a.numbers["indicator"] == "inpatient_use_rate" and a.numbers["departments"] == body["departments"]
    assert ("inpatient use rate 68.0 % (102 of 150 discharged), target ≤ 60 %; departments over it: RESP 100.0 %;"
            in a.reason)
    [page] = _pages(tmp_path, rt.reports + rx.reports, "/reports?month=2026-10")
    resp = page[page.index('data-department="RESP"'):]
    resp = resp[:resp.index("</tr>")]
    assert 'class="outpatient_rate" data-value="0.1" title="15 / 150"' in resp  # from the prescriptions
    assert 'class="inpatient_use_rate over" data-value="1.0" title="60 / 60">100.0 %' in resp
    assert 'class="use_intensity" data-value="40.0"' in resp
    im = page[page.index('data-department="IM"'):]
    assert 'class="inpatient_use_rate" data-value="0.2"' in im[:im.index("</tr>")]

"""Catalogues the simulated region bills and prescribes from: drugs with ATC codes and DDDs
(药品目录), a price catalogue of services (医疗服务价格目录) with packages and per-day maxima,
and the medical-waste categories (医疗废物分类目录 2021) with the facilities licensed for them.

DDDs are the WHO ATC/DDD Index values (g or mg of active substance per day); prices are
plausible yuan figures for a Chinese city, not any region's official list.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

#: The region's clock: China Standard Time.
TZ = timezone(timedelta(hours=8))


def day_of(t: float) -> str:
    """The local calendar day of an epoch time in the simulated region."""
    return datetime.fromtimestamp(t, TZ).date().isoformat()


@dataclass(frozen=True)
class Drug:
    code: str
    atc: str
    name: str
    unit: str
    unit_mg: float  # active substance per unit
    ddd_mg: float | None  # WHO defined daily dose; None where the WHO sets none
    units_per_day: int  # usual dosing
    price: float  # yuan per unit
    form: str = "oral"  # oral | injection | controlled_release | topical | other
    antimicrobial: bool = False  # 抗菌药物
    key_monitored: bool = False  # 重点监控药品
    controlled: str = "none"  # narcotic 麻醉药品 | psychotropic_1 第一类精神药品
    chronic_for: str | None = None  # condition it treats long-term

    def ddd_count(self, quantity: float) -> float | None:
        return None if self.ddd_mg is None else round(quantity * self.unit_mg / self.ddd_mg, 2)


DRUGS: tuple[Drug, ...] = (
    # antimicrobials 抗菌药物
    Drug("D-AMOX500", "J01CA04", "amoxicillin 0.5 g", "capsule", 500, 1500, 3, 0.45, antimicrobial=True),
    Drug("D-CXM250", "J01DC02", "cefuroxime axetil 0.25 g", "tablet", 250, 500, 2, 2.1, antimicrobial=True),
    Drug("D-LVX500", "J01MA12", "levofloxacin 0.5 g", "tablet", 500, 500, 1, 3.2, antimicrobial=True),
    Drug("D-AZM250", "J01FA10", "azithromycin 0.25 g", "tablet", 250, 300, 2, 2.6, antimicrobial=True),
    Drug("D-CRO1G", "J01DD04", "ceftriaxone 1 g", "vial", 1000, 2000, 2, 9.5, form="injection", antimicrobial=True),
    # chronic care
    Drug("D-MET500", "A10BA02", "metformin 0.5 g", "tablet", 500, 2000, 3, 0.12, chronic_for="diabetes"),
    Drug("D-AML5", "C08CA01", "amlodipine 5 mg", "tablet", 5, 5, 1, 0.35, chronic_for="hypertension"),
    Drug("D-NIF30", "C08CA05", "nifedipine CR 30 mg", "tablet", 30, 30, 1, 1.1, form="controlled_release",
         chronic_for="hypertension"),
    Drug("D-LOS50", "C09CA01", "losartan 50 mg", "tablet", 50, 50, 1, 0.9, chronic_for="hypertension"),
    Drug("D-ATV20", "C10AA05", "atorvastatin 20 mg", "tablet", 20, 20, 1, 0.6, chronic_for="hyperlipidaemia"),
    Drug("D-SAL100", "R03AC02", "salbutamol inhaler 100 µg", "puff", 0.1, 0.8, 4, 0.15, form="other",
         chronic_for="asthma"),
    # common acute
    Drug("D-IBU200", "M01AE01", "ibuprofen 0.2 g", "tablet", 200, 1200, 3, 0.2),
    Drug("D-OME20", "A02BC01", "omeprazole 20 mg", "capsule", 20, 20, 1, 0.5),
    Drug("D-NAC200", "R05CB01", "acetylcysteine 0.2 g", "sachet", 200, 500, 3, 1.5),
    Drug("D-LOR10", "R06AX13", "loratadine 10 mg", "tablet", 10, 10, 1, 0.8),
    Drug("D-PCM500", "N02BE01", "paracetamol 0.5 g", "tablet", 500, 3000, 3, 0.1),
    # key-monitored (重点监控合理用药药品目录, 2019) — no WHO DDD for most
    Drug("D-OXI1G", "N06BX24", "oxiracetam 1 g", "vial", 1000, None, 4, 38.0, form="injection", key_monitored=True),
    Drug("D-GM1", "N07XX", "monosialotetrahexosylganglioside 20 mg", "vial", 20, None, 2, 45.0,
         form="injection", key_monitored=True),
    Drug("D-PGE1", "C01EA01", "alprostadil 10 µg", "ampoule", 0.01, None, 1, 55.0, form="injection",
         key_monitored=True),
    # controlled drugs 麻醉药品 / 第一类精神药品
    Drug("D-MOR10", "N02AA01", "morphine 10 mg", "tablet", 10, 100, 4, 1.8, controlled="narcotic"),
    Drug("D-MORCR30", "N02AA01", "morphine CR 30 mg", "tablet", 30, 100, 2, 6.5, form="controlled_release",
         controlled="narcotic"),
    Drug("D-MPH18", "N06BA04", "methylphenidate ER 18 mg", "tablet", 18, 30, 1, 8.9, form="controlled_release",
         controlled="psychotropic_1"),
)
DRUG_BY_CODE = {d.code: d for d in DRUGS}
ANTIMICROBIALS = tuple(d for d in DRUGS if d.antimicrobial and d.form == "oral")
ACUTE = tuple(d for d in DRUGS if not (d.antimicrobial or d.key_monitored or d.chronic_for or d.controlled != "none"))
CHRONIC = {c: tuple(d for d in DRUGS if d.chronic_for == c) for c in
           ("hypertension", "diabetes", "hyperlipidaemia", "asthma")}
KEY_MONITORED = tuple(d for d in DRUGS if d.key_monitored)


@dataclass(frozen=True)
class Service:
    code: str
    category: str  # claim item category
    name: str
    price: float  # catalogue price, yuan per unit
    max_per_day: int = 1  # medically unlikely units (like CMS MUE)
    minutes: int | None = None  # time-billed services: minutes per unit
    components: tuple[str, ...] = ()  # a package: the component codes it includes


SERVICES: tuple[Service, ...] = (
    Service("S-CONSULT", "treatment", "outpatient consultation", 25.0),
    Service("S-CONSULT-ER", "treatment", "emergency consultation", 40.0),
    Service("S-CBC", "lab", "complete blood count", 25.0),
    Service("S-CRP", "lab", "C-reactive protein", 30.0),
    Service("S-GLU", "lab", "fasting glucose", 12.0, max_per_day=4),
    Service("S-HBA1C", "lab", "HbA1c", 60.0),
    Service("S-LIVER", "lab", "liver function panel", 80.0, components=("S-ALT", "S-AST", "S-TBIL", "S-ALB")),
    Service("S-ALT", "lab", "alanine aminotransferase", 30.0),
    Service("S-AST", "lab", "aspartate aminotransferase", 30.0),
    Service("S-TBIL", "lab", "total bilirubin", 25.0),
    Service("S-ALB", "lab", "albumin", 20.0),
    Service("S-ECG", "exam", "electrocardiogram", 40.0),
    Service("S-XRAY", "exam", "chest X-ray", 90.0),
    Service("S-CT-HEAD", "exam", "head CT", 300.0),
    Service("S-US-ABD", "exam", "abdominal ultrasound", 120.0),
    Service("S-IV", "treatment", "intravenous infusion", 30.0, max_per_day=3),
    Service("S-DRESS", "treatment", "wound dressing", 35.0, max_per_day=2),
    Service("S-PHYSIO", "treatment", "physiotherapy (30 min)", 60.0, max_per_day=4, minutes=30),
    Service("S-ACU", "treatment", "acupuncture (30 min)", 50.0, max_per_day=2, minutes=30),
    Service("S-BED", "bed", "ward bed-day", 60.0),
    Service("S-NURSE1", "nursing", "level-1 nursing, per day", 35.0),
    Service("S-MONITOR", "treatment", "ECG monitoring, per hour", 12.0, max_per_day=24, minutes=60),
    Service("S-APPY", "surgery", "laparoscopic appendectomy", 2800.0),
    Service("S-CHEMO", "treatment", "chemotherapy administration", 450.0),
    Service("S-DIALYSIS", "treatment", "haemodialysis", 420.0),
    # high-value consumables 高值医用耗材 (第一批国家高值医用耗材重点治理清单 2020: 血管支架, 吻合器(带钉),
    # 可吸收外科止血材料), billed by the unit on a stay
    Service("M-STENT", "consumable", "coronary drug-eluting stent", 780.0, max_per_day=3),
    Service("M-STAPLER", "consumable", "surgical stapler with staples", 2600.0, max_per_day=2),
    Service("M-HEMO", "consumable", "absorbable surgical haemostat", 450.0, max_per_day=3),
)
#: ward → [(consumable, share of its stays billing it)]: a cardiology stay's stent, a surgical stay's stapler
CONSUMABLE_USE = {"CARD": (("M-STENT", 0.35),), "SURG": (("M-STAPLER", 0.3), ("M-HEMO", 0.4))}
SERVICE_BY_CODE = {s.code: s for s in SERVICES}
OUTPATIENT_TESTS = ("S-CBC", "S-CRP", "S-GLU", "S-ECG", "S-XRAY", "S-US-ABD", "S-LIVER", "S-HBA1C")

#: 医疗废物分类: category → share of a hospital's waste by weight.
WASTE_MIX = {"infectious": 0.74, "sharps": 0.10, "pathological": 0.05, "pharmaceutical": 0.06, "chemical": 0.05}
#: kg of medical waste per occupied bed-day and per outpatient visit (Chinese hospital surveys: ~0.5–0.8).
WASTE_KG_PER_BED_DAY = 0.6
WASTE_KG_PER_VISIT = 0.03

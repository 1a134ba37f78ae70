"""The learned score 学习评分: what past audit findings say of an institution, learned from them.

Regions hold the results of past inspections (飞行检查, 专项检查: ``zhijian verdicts import``) and analysts
close cases with verdicts (fraud, violation); each labels an institution — fraud or violation positive,
``clean`` negative. The unsupervised score (:mod:`streams.workbench.risk.score`) cannot know which of its rates
and how much of an institution's size predict a finding in *this* region; a model trained on the labelled
institutions can. It sees each institution as its score record shows it: the logarithm of its money, claims
and beneficiaries, its money at risk and credible excess payment, its score, and the z of every rate against its
peers (0 where a rate does not apply).

The model is an L2-regularised logistic regression on standardised features, fitted by Newton's method (a
few dozen features, hundreds to thousands of labels: exact in milliseconds): its output is a probability (0–1,
``learned_score``), its coefficients say which features carry the findings (a supervisor can read them), it
needs no tuning beyond the penalty, and the same labels give the same scores whatever the order they came in.
Tree ensembles fit such data a little better when labels number in the thousands, but explain less and vary
with their seeds; the brief asks for scores an analyst can trust and repeat.

>>> rows = {f"I{i}": {"log_money": float(i % 7), "z_amount_per_claim": float(i % 5 == 0) * 4} for i in range(60)}
>>> labels = {f"I{i}": i % 5 == 0 for i in range(0, 60, 2)}             # half the institutions audited
>>> model = LearnedScore.fit(rows, labels)
>>> scores = model.predict(rows)
>>> scores["I5"] > 0.5 > scores["I7"]                                      # unlabelled, ranked by what it learned
True
>>> cross_validate(rows, labels, folds=3)["roc_auc"]
1.0
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.workbench.risk.ranking import precision_at_k, roc_auc

#: The rates whose z the model sees (those of the score; a rate an institution lacks is 0: like its peers).
RATES = ("claims_per_patient", "money_per_patient", "amount_per_claim", "high_value_share", "readmission_rate",
         "length_of_stay", "shared_physicians", "duplicate_rate", "rule_hit_rate", "claims_per_bed", "money_per_bed")
#: Verdicts that make an institution a positive; ``clean`` makes it a negative.
POSITIVE = ("fraud", "violation")
VERDICTS = (*POSITIVE, "clean")
#: Labels needed before a model is trained: this many in all, and this many of each class.
MIN_LABELS, MIN_PER_CLASS = 20, 5


def features(record: dict[str, Any]) -> dict[str, float]:
    """What the model sees of one institution: its ``zhijian.institution-scores`` record."""
    z = record.get("z", {})
    money = float(record.get("money", 0.0))
    out = {"log_money": math.log1p(max(money, 0.0)), "log_claims": math.log1p(record.get("claims", 0)),
           "log_beneficiaries": math.log1p(record.get("beneficiaries", 0)),
           "log_money_at_risk": math.log1p(max(float(record.get("money_at_risk", 0.0)), 0.0)),
           "excess_share": float(record.get("excess_payment", 0.0)) / money if money > 0 else 0.0,
           "score": float(record.get("score", 0.0))}
    for rate in RATES:
        out[f"z_{rate}"] = max(-10.0, min(10.0, float(z.get(rate, 0.0))))
    return out


@dataclass
class LearnedScore:
    """A fitted model: the feature names, their standardisation and the coefficients."""

    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # intercept first
    labels: int = 0

    @classmethod
    def fit(cls, rows: dict[str, dict[str, float]], labels: dict[str, bool], penalty: float = 1.0) -> "LearnedScore":
        """Fit on the labelled institutions among ``rows`` (institution → features)."""
        ids = sorted(i for i in labels if i in rows)
        names = sorted({k for i in ids for k in rows[i]})
        x = np.array([[rows[i].get(k, 0.0) for k in names] for i in ids], dtype=float)
        y = np.array([1.0 if labels[i] else 0.0 for i in ids])
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        xs = np.hstack([np.ones((len(ids), 1)), (x - mean) / scale])
        coef = np.zeros(xs.shape[1])
        ridge = np.full(xs.shape[1], penalty)
        ridge[0] = 0.0  # the intercept is not penalised
        for _ in range(50):  # Newton–Raphson on the penalised log-likelihood: converges in a handful of steps
            p = 1.0 / (1.0 + np.exp(-np.clip(xs @ coef, -30, 30)))
            grad = xs.T @ (p - y) + ridge * coef
            hess = (xs * (p * (1 - p))[:, None]).T @ xs + np.diag(ridge)
            step = np.linalg.solve(hess, grad)
            coef -= step
            if float(np.max(np.abs(step))) < 1e-8:
                break
        return cls(names, mean, scale, coef, len(ids))

    def predict(self, rows: dict[str, dict[str, float]]) -> dict[str, float]:
        """institution → learned score (the probability of a finding), for every row."""
        if not rows:
            return {}
        ids = sorted(rows)
        x = np.array([[rows[i].get(k, 0.0) for k in self.names] for i in ids], dtype=float)
        xs = np.hstack([np.ones((len(ids), 1)), (x - self.mean) / self.scale])
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ self.coef, -30, 30)))
        return {i: float(v) for i, v in zip(ids, p)}

    def weights(self) -> dict[str, float]:
        """Each feature's coefficient on the standardised scale (what carries the findings), largest first."""
        return dict(sorted(zip(self.names, map(float, self.coef[1:])), key=lambda kv: -abs(kv[1])))


def enough(labels: dict[str, bool], min_labels: int = MIN_LABELS, min_per_class: int = MIN_PER_CLASS) -> bool:
    positives = sum(labels.values())
    return len(labels) >= min_labels and min(positives, len(labels) - positives) >= min_per_class


def cross_validate(rows: dict[str, dict[str, float]], labels: dict[str, bool], folds: int = 5,
                   seed: int = 0) -> dict[str, Any]:
    """Stratified ``folds``-fold cross-validation over the labelled institutions: ROC-AUC and precision at k (k =
    the positives) of the out-of-fold scores."""
    ids = sorted(i for i in labels if i in rows)
    rng = random.Random(seed)
    pos = [i for i in ids if labels[i]]
    neg = [i for i in ids if not labels[i]]
    rng.shuffle(pos)
    rng.shuffle(neg)
    fold_of = {i: n % folds for n, i in enumerate(pos)} | {i: n % folds for n, i in enumerate(neg)}
    out: dict[str, float] = {}
    for f in range(folds):
        train = {i: labels[i] for i in ids if fold_of[i] != f}
        test = {i: rows[i] for i in ids if fold_of[i] == f}
        if not test or len(set(train.values())) < 2:
            continue
        out.update(LearnedScore.fit(rows, train).predict(test))
    positives = {i for i in out if labels[i]}
    k = len(positives)
    return {"labels": len(ids), "positives": len(pos), "roc_auc": roc_auc(out, positives),
            "precision_at_k": precision_at_k(out, positives, k), "k": k}

"""How well a ranking finds the positives: ROC-AUC and precision at k, for the risk scores and the learned score
(the lab's rank and evaluate measure with the same two)."""
from __future__ import annotations


def roc_auc(scores: dict[str, float], positives: set[str]) -> float | None:
    """The probability that a positive outranks a negative (ties count half): ROC-AUC by the Mann–Whitney U.

    >>> roc_auc({"a": 3, "b": 2, "c": 1, "d": 0}, {"a", "c"})
    0.75
    >>> roc_auc({"a": 1, "b": 1}, {"a"}), roc_auc({"a": 1}, {"a"})
    (0.5, None)
    """
    pos = [v for k, v in scores.items() if k in positives]
    neg = [v for k, v in scores.items() if k not in positives]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def precision_at_k(scores: dict[str, float], positives: set[str], k: int) -> float | None:
    """The share of positives among the ``k`` highest scores (ties broken by name, as a list would show them).

    >>> precision_at_k({"a": 3, "b": 2, "c": 1, "d": 0}, {"a", "c"}, 2)
    0.5
    """
    if k <= 0 or not scores:
        return None
    top = sorted(scores, key=lambda x: (-scores[x], x))[:k]
    return sum(x in positives for x in top) / len(top)

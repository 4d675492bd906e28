"""Metrics from well-kept libraries: scikit-learn, seqeval, rouge-score."""

from __future__ import annotations


def classification(pred: list, gold: list) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if not gold:
        return {"accuracy": float("nan"), "macro_f1": float("nan")}
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
    }


def probing(pred: list, gold: list) -> dict[str, float]:
    """P@1: the top-ranked candidate is the gold object."""
    return {"p_at_1": sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1)}


def labeling(pred: list[list[str]], gold: list[list[str]], outside: str = "O") -> dict[str, float]:
    """Token-level micro F1 over non-``outside`` tags, accuracy; seqeval entity F1 when tags are BIO."""
    from sklearn.metrics import f1_score

    flat_p = [t for seq in pred for t in seq]
    flat_g = [t for seq in gold for t in seq]
    tags = sorted(set(flat_g) - {outside})
    out = {
        "token_f1": float(f1_score(flat_g, flat_p, labels=tags, average="micro", zero_division=0)),
        "token_accuracy": sum(p == g for p, g in zip(flat_p, flat_g)) / max(len(flat_g), 1),
    }
    if tags and all(t[:2] in ("B-", "I-") for t in tags):
        from seqeval.metrics import f1_score as entity_f1

        out["entity_f1"] = float(entity_f1(gold, pred))
    return out


def generation(pred: list[str], gold: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(g, p) for p, g in zip(pred, gold)]
    n = max(len(scores), 1)
    return {k: sum(s[k].fmeasure for s in scores) / n for k in ("rouge1", "rouge2", "rougeL")}

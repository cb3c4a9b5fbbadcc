"""What clinicians did with the CDS Hooks cards: accepted or overridden, with a Wilson interval
for the share accepted and the override reasons given.

Each card counts once, with its latest feedback (by ``outcomeTimestamp``, then by the order it
was stored): a card first accepted and later overridden counts as overridden. Cards are picked
by the estimate they show (db/cds_feedback.py: a card's uuid is its estimate's id): one model of
one version, estimates created in [since, until) when given. The counts come from SQL
aggregates over the feedback table joined to the estimates, never from rows fetched into Python.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from sepsis_api.db.models import CDSFeedback, Prediction
from sepsis_api.monitoring.labelled import Selection
from sepsis_api.monitoring.stats import wilson

OUTCOMES = ("accepted", "overridden")
MAX_REASONS = 20  # the most frequent override reasons listed; the rest summed as "other"


def _latest(engine: Engine, sel: Selection) -> Any:
    """The latest feedback row of each selected card (a subquery)."""
    f, later = CDSFeedback, aliased(CDSFeedback)
    superseded = exists().where(
        later.card == f.card,
        or_(
            later.outcome_at > f.outcome_at,
            and_(later.outcome_at == f.outcome_at, later.id > f.id),
        ),
    )
    q = (
        select(f.outcome, f.override_system, f.override_code, f.override_display)
        .join(Prediction, Prediction.id == f.card)
        .where(~superseded, *sel.conditions(engine))
    )
    return q.subquery()


def feedback_report(engine: Engine, sel: Selection) -> dict[str, Any]:
    """Cards per outcome, the share accepted with its Wilson interval, override reasons."""
    latest = _latest(engine, sel)
    by_outcome = select(latest.c.outcome, func.count()).group_by(latest.c.outcome)
    reason = (latest.c.override_system, latest.c.override_code, latest.c.override_display)
    reasons = (
        select(*reason, func.count().label("n"))
        .where(latest.c.outcome == "overridden")
        .group_by(*reason)
        .order_by(func.count().desc(), *reason)
    )
    with engine.connect() as conn:
        counts = {outcome: int(n) for outcome, n in conn.execute(by_outcome)}
        given = [
            {"system": s, "code": c, "display": d, "n": int(n)}
            for s, c, d, n in conn.execute(reasons)
        ]
    accepted, overridden = counts.get("accepted", 0), counts.get("overridden", 0)
    if len(given) > MAX_REASONS:
        rest = sum(r["n"] for r in given[MAX_REASONS:])
        given = [
            *given[:MAX_REASONS],
            {"system": None, "code": None, "display": "other", "n": rest},
        ]
    return {
        "cards": accepted + overridden,
        "accepted": accepted,
        "overridden": overridden,
        "acceptance_rate": wilson(accepted, accepted + overridden).as_dict(),
        "override_reasons": given,
        "method": "each card's latest feedback; Wilson score interval (95%) for the share accepted",
    }

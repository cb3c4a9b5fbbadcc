"""The ``cds_token_uses`` table: each CDS Hooks JWT (issuer, jti) is let in once until it
expires, by whichever process of those sharing the audit database sees it first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete

from sepsis_api.db.models import CDSTokenUse
from sepsis_api.db.session import insert_new, stored_time


class TokenUses:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Remember the token until ``expires_at``; False when it was let in before and has not
        expired. One transaction, which also forgets every expired token (the table holds no
        more than the tokens of the last maximum token lifetime)."""
        t = CDSTokenUse
        now_stored = stored_time(self.engine, now)
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.expires_at <= now_stored))  # this one too, if so
            until = stored_time(self.engine, expires_at)
            inserted = conn.execute(  # a row back: this call stored it
                insert_new(self.engine, t)
                .values(issuer=issuer, jti=jti, expires_at=until)
                .returning(t.jti)
            )
            return inserted.first() is not None

"""What token administration and authentication read and write: API tokens. Only a hash of
each token is stored; the token itself is shown once, when it is created."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from conductor.store.engine import Database, aware, utcnow
from conductor.store.schema import tokens


class TokenQueries(Database):
    def create_token(self, user_name: str, token_hash: str, *, admin: bool, comment: str | None = None) -> int:
        with self._write() as conn:
            return int(
                conn.execute(
                    insert(tokens)
                    .values(
                        user_name=user_name,
                        token_hash=token_hash,
                        admin=admin,
                        created_at=utcnow(),
                        comment=comment,
                    )
                    .returning(tokens.c.id)
                ).scalar_one()
            )

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The live (not revoked) token with this hash, or None."""
        query = select(tokens.c.id, tokens.c.user_name, tokens.c.admin, tokens.c.token_hash).where(
            tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row is not None else None

    def list_tokens(self, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        """Every token without its hash, oldest first."""
        query = select(
            tokens.c.id,
            tokens.c.user_name,
            tokens.c.admin,
            tokens.c.created_at,
            tokens.c.revoked_at,
            tokens.c.comment,
        ).order_by(tokens.c.id)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["created_at"] = aware(row["created_at"])
            row["revoked_at"] = aware(row["revoked_at"])
        return rows

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a live token; False when no live token has this id."""
        with self._write() as conn:
            result = conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount == 1

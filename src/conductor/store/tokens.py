"""What token administration and authentication read and write: API tokens. Only a hash of
each token is stored; the token itself is shown once, when it is created."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from conductor.store.engine import Database, aware, utcnow
from conductor.store.records import Token
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

    def token_by_hash(self, token_hash: str) -> Token | None:
        """The live (not revoked) token with this hash, or None."""
        query = select(tokens.c.id, tokens.c.user_name, tokens.c.admin, tokens.c.token_hash).where(
            tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return Token(row.id, row.user_name, bool(row.admin), token_hash=row.token_hash) if row is not None else None

    def list_tokens(self, *, include_revoked: bool = True) -> list[Token]:
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
            rows = list(conn.execute(query))
        return [
            Token(r.id, r.user_name, bool(r.admin), created_at=aware(r.created_at), revoked_at=aware(r.revoked_at),
                  comment=r.comment)
            for r in rows
        ]

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a live token; False when no live token has this id."""
        with self._write() as conn:
            result = conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount == 1

"""Organisations and API tokens: created from the CLI, checked on every API request."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from visiontrain.services.errors import InvalidInput, NotFound
from visiontrain.store.base import utcnow
from visiontrain.store.models import ApiToken, Organization

TOKEN_PREFIX = "vt_"
DEFAULT_ORGANIZATION = "default"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_organization(session: Session, *, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidInput("organization name must not be empty", loc=("organization",))
    if "\x00" in name or len(name) > 200:
        raise InvalidInput("organization name must be at most 200 characters, without NUL", loc=("organization",))
    organization = session.scalar(select(Organization).where(Organization.name == name))
    if organization is None:
        organization = Organization(name=name)
        session.add(organization)
        session.flush()
    return organization


def create_token(session: Session, *, organization: str = DEFAULT_ORGANIZATION, name: str = "token") -> tuple[ApiToken, str]:
    """A new token for ``organization`` (created if new); returns the row and the secret, shown only once."""
    org = ensure_organization(session, name=organization)
    if "\x00" in name or not name.strip() or len(name) > 200:
        raise InvalidInput("token name must be 1 to 200 characters, without NUL", loc=("body", "name"))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(organization_id=org.id, name=name, token_hash=_hash(secret), prefix=secret[:10])
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(session: Session, *, organization_id: int | None = None, include_revoked: bool = False) -> list[ApiToken]:
    """Tokens oldest first: one organisation's (``organization_id``) or, for the server's CLI, every one."""
    query = select(ApiToken).order_by(ApiToken.id)
    if organization_id is not None:
        query = query.where(ApiToken.organization_id == organization_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def get_token(session: Session, *, token_id: int, organization_id: int | None = None) -> ApiToken:
    """The token ``token_id``; with ``organization_id``, another organisation's token is not found either."""
    token = session.get(ApiToken, token_id)
    if token is None or (organization_id is not None and token.organization_id != organization_id):
        raise NotFound(f"no token with id {token_id}")
    return token


def revoke_token(session: Session, *, token_id: int, organization_id: int | None = None) -> ApiToken:
    """Revoke a token at once (revoking one already revoked changes nothing); scoped like :func:`get_token`."""
    token = get_token(session, token_id=token_id, organization_id=organization_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def authenticate(session: Session, *, secret: str) -> ApiToken | None:
    """The live token with this secret, or None; records when it was last used (at most once a minute)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
    return token

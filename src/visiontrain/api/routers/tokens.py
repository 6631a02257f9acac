"""The organisation's API tokens: list, create (the secret is answered once), revoke.

Any token of an organisation manages all of its tokens, as the server's CLI does for every
organisation. Revoking the token making the request is allowed (a leaked token must be stoppable
from wherever one is signed in): the answer says ``"current": true``, and the next request with it is refused.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from visiontrain.api.deps import OrgDep, SessionDep, TokenDep
from visiontrain.api.schemas.common import IdPath, errors
from visiontrain.api.schemas.tokens import TokenCreate, TokenCreated, TokenPublic
from visiontrain.services import auth as service
from visiontrain.store.models import ApiToken

router = APIRouter(tags=["tokens"])


def present(token: ApiToken, *, caller: ApiToken) -> TokenPublic:
    return TokenPublic.model_validate(token).model_copy(update={"current": token.id == caller.id})


@router.get("/tokens", response_model=list[TokenPublic], summary="The organisation's API tokens (never their secrets)")
def list_tokens(
    session: SessionDep,
    organization_id: OrgDep,
    caller: TokenDep,
    include_revoked: bool = Query(False, description="List revoked tokens too."),
) -> list[TokenPublic]:
    tokens = service.list_tokens(session, organization_id=organization_id, include_revoked=include_revoked)
    return [present(t, caller=caller) for t in tokens]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token for the organisation; its secret is in this answer only",
)
def create_token(body: TokenCreate, session: SessionDep, caller: TokenDep) -> TokenCreated:
    token, secret = service.create_token(session, organization=caller.organization.name, name=body.name)
    session.commit()
    return TokenCreated(**present(token, caller=caller).model_dump(), token=secret)


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenPublic,
    summary="Revoke a token at once; `current` in the answer says it was the one making this request",
    responses=errors(404),
)
def revoke_token(token_id: IdPath, session: SessionDep, organization_id: OrgDep, caller: TokenDep) -> TokenPublic:
    token = service.revoke_token(session, token_id=token_id, organization_id=organization_id)
    session.commit()
    return present(token, caller=caller)

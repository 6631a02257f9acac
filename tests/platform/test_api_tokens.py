"""API tokens over REST: list, create, revoke, scoped to the caller's organisation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from visiontrain.services.platform import Platform


def test_created_token_works_is_listed_without_its_secret_and_stops_when_revoked(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    created = client.post("/api/v1/tokens", json={"name": "  laptop  "})
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["token"]
    assert secret.startswith("vt_") and body["name"] == "laptop" and body["revoked_at"] is None
    assert secret.startswith(body["prefix"]) and body["current"] is False

    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as laptop:
        assert laptop.get("/api/v1/me").json()["token_name"] == "laptop"
        assert laptop.get("/api/v1/me").json()["organization"] == "acme"

    listing = client.get("/api/v1/tokens")
    assert listing.status_code == 200
    assert [t["name"] for t in listing.json()] == ["acme test token", "laptop"]
    assert [t["current"] for t in listing.json()] == [True, False]
    assert secret not in listing.text and "token_hash" not in listing.text
    laptop_row = listing.json()[1]
    assert laptop_row["last_used_at"] is not None  # it made a request above

    revoked = client.delete(f"/api/v1/tokens/{body['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and revoked.json()["current"] is False
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as laptop:
        assert laptop.get("/api/v1/me").status_code == 401

    assert [t["name"] for t in client.get("/api/v1/tokens").json()] == ["acme test token"]
    with_revoked = client.get("/api/v1/tokens", params={"include_revoked": True}).json()
    assert [(t["name"], t["revoked_at"] is not None) for t in with_revoked] == [("acme test token", False), ("laptop", True)]
    # Revoking again is harmless and keeps the first revocation time.
    again = client.delete(f"/api/v1/tokens/{body['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_tokens_of_another_organisation_are_invisible(client: TestClient, other_org_client: TestClient) -> None:
    theirs = other_org_client.post("/api/v1/tokens", json={"name": "globex ci"}).json()
    ours = client.get("/api/v1/tokens").json()
    assert "globex ci" not in [t["name"] for t in ours]
    assert all(t["name"].startswith("acme") for t in ours)

    refused = client.delete(f"/api/v1/tokens/{theirs['id']}")
    assert refused.status_code == 404
    assert f"no token with id {theirs['id']}" in refused.json()["detail"]
    assert other_org_client.get("/api/v1/me").status_code == 200
    assert "globex ci" in [t["name"] for t in other_org_client.get("/api/v1/tokens").json()]
    assert client.delete("/api/v1/tokens/987654").status_code == 404


def test_revoking_the_token_in_use_is_allowed_and_said(app, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    from platform_support import make_token

    with TestClient(app, headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        me = next(t for t in client.get("/api/v1/tokens").json() if t["current"])
        response = client.delete(f"/api/v1/tokens/{me['id']}")
        assert response.status_code == 200
        assert response.json()["current"] is True and response.json()["revoked_at"] is not None
        assert client.get("/api/v1/tokens").status_code == 401


def test_token_names_are_checked(client: TestClient) -> None:
    for body in ({"name": "   "}, {"name": ""}, {}, {"name": "x" * 201}, {"name": "ok", "organization": "globex"}):
        response = client.post("/api/v1/tokens", json=body)
        assert response.status_code == 422, (body, response.text)
    blank = client.post("/api/v1/tokens", json={"name": "   "})
    assert "blank" in str(blank.json()["detail"])
    assert [t["name"] for t in client.get("/api/v1/tokens").json()] == ["acme test token"]


def test_predict_refuses_a_missing_token_before_the_request_and_the_version(app) -> None:  # type: ignore[no-untyped-def]
    """The predict route verifies a token in the one hop it makes; one that is missing is refused first, as everywhere."""
    with TestClient(app) as anonymous:
        for response in (
            anonymous.post("/api/v1/versions/1/predict"),  # no files
            anonymous.post("/api/v1/versions/1/predict", params={"top_k": 0}, files=[("files", ("a.jpg", b"x"))]),
            anonymous.post("/api/v1/versions/999999/predict", files=[("files", ("a.jpg", b"x"))]),
        ):
            assert response.status_code == 401, response.text
            assert "missing API token" in response.json()["detail"]
    with TestClient(app, headers={"Authorization": "Bearer vt_not-a-token"}) as guessing:
        response = guessing.post("/api/v1/versions/999999/predict", files=[("files", ("a.jpg", b"x"))])
        assert response.status_code == 401 and "invalid or revoked" in response.json()["detail"]


def test_predict_refuses_a_cookie_alone(app, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.services import auth

    with platform.sessions() as session:
        _, secret = auth.create_token(session, organization="acme", name="browser")
        session.commit()
    with TestClient(app, cookies={"visiontrain_token": secret}) as browser:
        assert browser.get("/api/v1/me").status_code == 200  # reading with the cookie is allowed
        response = browser.post("/api/v1/versions/1/predict", files=[("files", ("a.jpg", b"x"))])
        assert response.status_code == 401 and "cookie only authorises reading" in response.json()["detail"]

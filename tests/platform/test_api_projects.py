"""Auth, organisations and projects through the REST API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from platform_support import create_project
from visiontrain.services import auth
from visiontrain.services.platform import Platform


def test_health_needs_no_token_and_reports_the_database(app, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as anonymous:
        response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == platform.engine.dialect.name


def test_every_api_endpoint_refuses_a_missing_or_wrong_token(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as anonymous:
        paths = [p for p in app.openapi()["paths"] if p.startswith("/api/")]
        assert len(paths) > 20
        for path in paths:
            method = next(iter(app.openapi()["paths"][path]))
            concrete = path.replace("{kind}", "checkpoint")
            for part in ("project_id", "view_id", "model_id", "version_id", "image_id", "concept_id"):
                concrete = concrete.replace("{" + part + "}", "1")
            response = anonymous.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path, response.status_code)
        wrong = anonymous.get("/api/v1/projects", headers={"Authorization": "Bearer vt_not-a-real-token"})
        assert wrong.status_code == 401
        assert "invalid" in wrong.json()["detail"]


def test_openapi_and_docs_are_served(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as anonymous:
        assert anonymous.get("/openapi.json").json()["info"]["title"] == "visiontrain"
        assert anonymous.get("/docs").status_code == 200


def test_revoked_token_stops_working(app, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    with platform.sessions() as session:
        token, secret = auth.create_token(session, organization="acme", name="ci")
        session.commit()
        token_id = token.id
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        assert client.get("/api/v1/me").json() == {"organization": "acme", "organization_id": token.organization_id, "token_name": "ci"}
        with platform.sessions() as session:
            auth.revoke_token(session, token_id=token_id)
            session.commit()
        assert client.get("/api/v1/projects").status_code == 401


def test_cookie_carries_the_token_for_reading_only(app, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    from platform_support import make_token

    with TestClient(app, cookies={"visiontrain_token": make_token(platform)}) as browser:
        assert browser.get("/api/v1/projects").status_code == 200
        forged = browser.post("/api/v1/projects", json={"name": "from another site"})
        assert forged.status_code == 401 and "Authorization" in forged.json()["detail"]
        assert browser.get("/api/v1/projects").json() == []


def test_project_crud(client: TestClient) -> None:
    project = create_project(client, "Insects")
    assert project["image_count"] == 0 and project["view_count"] == 0
    assert client.post("/api/v1/projects", json={"name": "Insects"}).status_code == 409
    renamed = client.patch(f"/api/v1/projects/{project['id']}", json={"description": "six legs"}).json()
    assert renamed["description"] == "six legs" and renamed["name"] == "Insects"
    assert [p["name"] for p in client.get("/api/v1/projects").json()] == ["Insects"]
    assert client.delete(f"/api/v1/projects/{project['id']}").status_code == 204
    assert client.get(f"/api/v1/projects/{project['id']}").status_code == 404
    assert client.get("/api/v1/projects").json() == []


def test_empty_project_name_is_a_422_with_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/projects", json={"name": ""})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_a_token_sees_only_its_own_organisation(client: TestClient, other_org_client: TestClient) -> None:
    mine = create_project(client, "Secret")
    assert other_org_client.get("/api/v1/projects").json() == []
    assert other_org_client.get(f"/api/v1/projects/{mine['id']}").status_code == 404
    assert other_org_client.delete(f"/api/v1/projects/{mine['id']}").status_code == 404
    view = client.post(f"/api/v1/projects/{mine['id']}/views", json={"name": "v", "kind": "classification"}).json()
    assert other_org_client.get(f"/api/v1/views/{view['id']}").status_code == 404
    # The same name is free in another organisation.
    assert other_org_client.post("/api/v1/projects", json={"name": "Secret"}).status_code == 201
    assert client.get(f"/api/v1/projects/{mine['id']}").status_code == 200

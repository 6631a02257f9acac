"""The split's sides stored in bulk UPDATEs and the snapshot's rows in bulk INSERTs hold what the split
computed, image by image, on real photos; rows already loaded in the session see the new sides."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from platform_support import annotated_classification_view
from visiontrain.services import splits
from visiontrain.services.platform import Platform
from visiontrain.store.models import VersionSample, View, ViewImage


def test_the_sides_a_version_stores_are_the_ones_its_split_computed(client: TestClient, platform: Platform,
                                                                    ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, model = annotated_classification_view(client, ant_and_bee_files)
    with platform.sessions() as session:
        planned = {e.image.id: e.side for e in splits.split_state(session, view=session.get(View, view["id"]), persist=False).entries}
        assert sorted(set(planned.values())) == ["train", "val"] and len(planned) == 16
        assert all(side is None for side in session.scalars(select(ViewImage.assigned_split)))  # nothing written yet
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {"epochs": 1}})
    assert response.status_code == 201, response.text
    with platform.sessions() as session:
        stored = dict(session.execute(select(ViewImage.image_id, ViewImage.assigned_split)
                                      .where(ViewImage.view_id == view["id"])).all())
        samples = session.execute(select(VersionSample.image_id, VersionSample.split, VersionSample.annotation,
                                         VersionSample.image_name).where(VersionSample.version_id == response.json()["id"])
                                  .order_by(VersionSample.id)).all()
    assert stored == planned
    assert {row.image_id: row.split for row in samples} == planned
    assert [row.split for row in samples] == sorted((row.split for row in samples), key=["train", "val"].index)  # train first
    names = {p.name: label for label, paths in ant_and_bee_files.items() for p in paths}
    assert all(names[row.image_name] == row.annotation for row in samples)


def test_a_row_loaded_before_the_split_is_stored_sees_its_side(client: TestClient, platform: Platform,
                                                                ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, _ = annotated_classification_view(client, ant_and_bee_files)
    with platform.sessions() as session:
        loaded = session.scalars(select(ViewImage).where(ViewImage.view_id == view["id"])).all()
        assert all(row.assigned_split is None for row in loaded)
        state = splits.split_state(session, view=session.get(View, view["id"]), persist=True)
        sides = {e.image.id: e.assigned for e in state.entries}
        assert {row.image_id: row.assigned_split for row in loaded} == sides
        session.commit()
        again = splits.resplit(session, view=session.get(View, view["id"]), seed=7)
        assert {row.image_id: row.assigned_split for row in loaded} == {e.image.id: e.assigned for e in again.entries}
        assert again.generation == 1 and state.placed == 16 and again.placed == 16


def test_a_side_another_request_stored_first_is_the_one_used(client: TestClient, platform: Platform,
                                                             ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    _, view, _ = annotated_classification_view(client, ant_and_bee_files)
    with platform.sessions() as session:
        entries = splits._entries(session, session.get(View, view["id"]))  # read before the other request writes
    with platform.sessions() as other:  # the other request: every image on the training side, committed
        other.execute(update(ViewImage).where(ViewImage.view_id == view["id"]).values(assigned_split="train"))
        other.commit()
    with platform.sessions() as session:
        flipped = [e for e in entries if e.fixed is None][:3]
        for entry in flipped:
            entry.assigned = "val"
        splits._store_sides(session, session.get(View, view["id"]), entries)
        session.commit()
        assert {e.assigned for e in flipped} == {"train"} and {e.stored for e in flipped} == {"train"}
        assert set(session.scalars(select(ViewImage.assigned_split).where(ViewImage.view_id == view["id"]))) == {"train"}

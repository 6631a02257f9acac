"""The "suggest settings for my data" heuristic: each rule moves the right way, and the result is valid."""

import pytest

from visiontrain.settings import TrainingSettings
from visiontrain.web.suggest import suggest_settings


def test_small_balanced_dataset_gets_large_split_small_batch_heavy_augmentation_no_fine_tuning():
    s = suggest_settings({"ants": 30, "bees": 30})
    assert s.settings["validation_split"] == pytest.approx(0.3)
    assert s.settings["batch_size"] == 8
    assert s.settings["augmented_copies"] == 3
    assert s.settings["fine_tune"] is False
    assert s.settings["epochs"] == 30
    assert not s.warnings
    assert set(s.reasons) >= {"validation_split", "batch_size", "augmented_copies", "fine_tune"}


def test_large_dataset_gets_small_split_bigger_batch_and_fine_tuning_at_a_tenth_of_the_rate():
    base = TrainingSettings(learning_rate=0.002)
    s = suggest_settings({"cat": 4000, "dog": 3500, "fox": 2500}, base=base)
    assert s.settings["validation_split"] == pytest.approx(0.1)
    assert s.settings["batch_size"] == 64
    assert s.settings["augmented_copies"] == 0
    assert s.settings["fine_tune"] is True
    assert s.settings["fine_tune_learning_rate"] == pytest.approx(0.0002)
    TrainingSettings(**(base.model_dump() | s.settings))


def test_imbalance_adds_augmentation_and_warns_naming_the_rare_concept():
    balanced = suggest_settings({"a": 300, "b": 300})
    skewed = suggest_settings({"a": 540, "b": 60})
    assert skewed.settings["augmented_copies"] == balanced.settings["augmented_copies"] + 1
    assert any("'b'" in w and "9.0x" in w for w in skewed.warnings)


def test_concepts_without_images_are_ignored_and_one_concept_is_refused():
    with pytest.raises(ValueError, match="at least two concepts"):
        suggest_settings({"raccoon": 200, "empty": 0})


def test_the_route_counts_the_views_annotated_images_and_changes_nothing(tmp_path, datasets_dir):
    from fastapi.testclient import TestClient

    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.services import auth
    from visiontrain.services.platform import Platform

    platform = Platform.open(ServerConfig(data_dir=tmp_path / "data"))
    with platform.sessions() as session:
        _, token = auth.create_token(session, name="suggest test")
        session.commit()
    photos = {label: sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[:n] for label, n in (("ants", 9), ("bees", 3))}
    with TestClient(create_app(platform=platform), headers={"Authorization": f"Bearer {token}"}) as client:
        project = client.post("/api/v1/projects", json={"name": "Insects"}).json()
        view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": ["ants", "bees"]}).json()
        items = []
        for label, paths in photos.items():
            uploaded = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
            items += [{"image_id": image["id"], "concept": label} for image in uploaded.json()["images"]]
        assert client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items}).status_code == 200

        response = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={"settings": {"learning_rate": 0.01}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["settings"]["validation_split"] == pytest.approx(0.3)  # 12 images, 2 concepts
        assert body["settings"]["fine_tune"] is False
        assert any("'bees' has 3 images" in w for w in body["warnings"])  # 9 ants vs 3 bees

        unknown = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={"concepts": ["ants", "wasps"]})
        assert unknown.status_code == 422 and "wasps" in unknown.text
        bad = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={"settings": {"learning_rate": -1}})
        assert bad.status_code == 422 and "learning_rate" in bad.text
        assert client.get(f"/api/v1/views/{view['id']}/models").json() == []
    platform.close()

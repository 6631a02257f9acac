"""Every table of the platform, importable from one place, and the indexes a platform with many images needs."""

from sqlalchemy import Index

from visiontrain.store.accounts import ApiToken, Organization
from visiontrain.store.projects import Annotation, Concept, Image, Project, View, ViewImage
from visiontrain.store.sweeps import Sweep
from visiontrain.store.training import Artifact, Model, ModelVersion, VersionMetric, VersionSample, Worker, model_concepts

# Indexes for 100,000 images and more (migration 0005; ``benchmarks/platform_scale.py`` measures them):
# - images of one concept in a view, and the count per concept, come from the index alone;
# - whether the user fixed validation images in a view (asked for every listed page's sides, and by the
#   split) finds the first one instead of reading all the view's rows;
# - deleting an image asks whether its bytes are used elsewhere (blob_key) and sets its snapshot rows'
#   image_id to NULL: both scanned every version's samples.
SCALE_INDEXES = (
    Index("ix_images_blob_key", Image.blob_key),
    Index("ix_annotations_view_concept_image", Annotation.view_id, Annotation.concept_id, Annotation.image_id),
    Index("ix_view_images_view_split", ViewImage.view_id, ViewImage.split),
    Index("ix_version_samples_blob_key", VersionSample.blob_key),
    Index("ix_version_samples_image_id", VersionSample.image_id),
)

__all__ = [
    "Annotation",
    "ApiToken",
    "Artifact",
    "Concept",
    "Image",
    "Model",
    "ModelVersion",
    "Organization",
    "Project",
    "Sweep",
    "VersionMetric",
    "VersionSample",
    "View",
    "ViewImage",
    "Worker",
    "model_concepts",
]

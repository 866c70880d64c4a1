"""Depth estimation (paper §4.2): loss and metrics, NYU Depth V2, synthetic scenes, encoder init.

The pieces the training and search stages plug in (see ``docs/depth.md``):

* :func:`masked_l1_loss` — FastDepth's loss; :class:`DepthMetrics` — RMSE, REL, δ1–δ3 over
  batches; :data:`HIGHER_IS_BETTER` and :func:`search_metric` — selecting samples by any metric;
* :class:`DepthSamples` / :func:`collate_depth` — (RGB, depth) samples and batches from NYU
  Depth V2 (:class:`NYUSource`) or the synthetic scenes (:class:`SyntheticDepth`); the data sets
  and loaders are :func:`netadapt.data.build_datasets` and its loaders with
  ``DataConfig(dataset="nyu" | "synthetic_depth")``.  These live in the data layer
  (:mod:`netadapt.data.depth`, ``nyu``, ``synthetic``, ``depth_transforms``) and are re-exported here;
* :func:`load_encoder_` — the FastDepth encoder from an ImageNet MobileNetV1 checkpoint.

Nothing here imports h5py until an NYU file is read.
"""

from netadapt.data.config import DEPTH_DATASETS
from netadapt.data.depth import DepthBatch, DepthSamples, collate_depth, depth_transforms, open_depth_sources
from netadapt.data.depth_transforms import DepthTransform
from netadapt.data.nyu import NYUSource, ScanReport, check_h5, read_h5, scan_h5
from netadapt.data.synthetic import SYNTHETIC_NAME, SyntheticDepth, render_scene, synthetic_splits
from netadapt.depth.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    DepthMetrics,
    higher_is_better,
    masked_l1_loss,
    per_image_errors,
    search_metric,
    valid_mask,
)
from netadapt.depth.pretrained import encoder_keys, load_encoder_, read_encoder_state

__all__ = [
    "DEPTH_DATASETS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "SYNTHETIC_NAME",
    "DepthBatch",
    "DepthMetrics",
    "DepthSamples",
    "DepthTransform",
    "NYUSource",
    "ScanReport",
    "SyntheticDepth",
    "check_h5",
    "collate_depth",
    "depth_transforms",
    "encoder_keys",
    "higher_is_better",
    "load_encoder_",
    "masked_l1_loss",
    "open_depth_sources",
    "per_image_errors",
    "read_encoder_state",
    "read_h5",
    "render_scene",
    "scan_h5",
    "search_metric",
    "synthetic_splits",
    "valid_mask",
]

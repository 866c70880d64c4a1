"""Data: image folders, built-in digits, torchvision CIFAR, seeded augmentation, the held-out split.

See ``docs/training.md``.  Nothing here imports torchvision unless a torchvision data set is
asked for.  The depth data sets (``nyu``, ``synthetic_depth``; ``docs/depth.md``) are opened
through the same functions, from :mod:`netadapt.data.depth` (NYU Depth V2, synthetic scenes).
"""

from netadapt.data.batches import (
    Batch,
    SampleDataset,
    ShardSampler,
    TrainBatchSampler,
    Unreadable,
    collate,
    derive_seed,
    seeded_generator,
)
from netadapt.data.config import DATASETS, DEPTH_DATASETS, DataConfig
from netadapt.data.loaders import (
    DataSets,
    build_datasets,
    build_search_loaders,
    collate_fn,
    make_eval_loader,
    make_train_loader,
    open_sources,
)
from netadapt.data.sources import (
    DECODERS,
    FolderSource,
    ImageSource,
    TensorSource,
    UnreadableImage,
    load_digits,
    load_torchvision_cifar,
    read_image,
    stratified_sample,
)
from netadapt.data.split import HELDOUT_FILE, HeldoutSplit, load_heldout, make_heldout, save_heldout
from netadapt.data.transforms import PRESETS, ImageTransform, make_transforms

__all__ = [
    "DATASETS",
    "DECODERS",
    "DEPTH_DATASETS",
    "HELDOUT_FILE",
    "PRESETS",
    "Batch",
    "DataConfig",
    "DataSets",
    "FolderSource",
    "HeldoutSplit",
    "ImageSource",
    "ImageTransform",
    "SampleDataset",
    "ShardSampler",
    "TensorSource",
    "TrainBatchSampler",
    "Unreadable",
    "UnreadableImage",
    "build_datasets",
    "build_search_loaders",
    "collate",
    "collate_fn",
    "derive_seed",
    "load_digits",
    "load_heldout",
    "load_torchvision_cifar",
    "make_eval_loader",
    "make_heldout",
    "make_train_loader",
    "make_transforms",
    "open_sources",
    "read_image",
    "save_heldout",
    "seeded_generator",
    "stratified_sample",
]

"""Typed configuration of super-network training (defaults: paper §4.1.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from netadapt.data.config import DataConfig
from netadapt.errors import NetAdaptError
from netadapt.train.recipes import apply_recipe

__all__ = [
    "RELOCATABLE_PATHS",
    "RESUMABLE_CHANGES",
    "ModelConfig",
    "OptimConfig",
    "OrderedDropoutConfig",
    "ScheduleConfig",
    "SupernetTrainConfig",
]


@dataclass
class ModelConfig:
    """Which super-network to build (see :func:`netadapt.build_supernet`)."""

    name: str = "mobilenet_v1_cifar"  # a zoo model (netadapt zoo)
    width_mult: float | None = None  # None: the zoo's 1.0
    input_size: int | None = None  # None: the data's image size
    num_classes: int | None = None  # None: the data's number of classes
    in_channels: int = 3  # image channels the network takes (the data loaders give RGB: 3)
    dropout: float | None = None  # None: the model's own (0.2 for MobileNetV2/V3, paper §4.1.1)
    options: dict[str, Any] = field(default_factory=dict)  # BuildOptions: num_widths, bypass, superkernel, …

    def validate(self) -> None:
        if self.width_mult is not None and not self.width_mult > 0:
            raise NetAdaptError(f"model.width_mult must be positive, got {self.width_mult}")
        for key in ("input_size", "num_classes", "in_channels"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise NetAdaptError(f"model.{key} must be positive, got {value}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise NetAdaptError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class OptimConfig:
    """Optimizer.  ``rmsprop`` is TensorFlow's RMSProp (the paper's EfficientNet-style recipe):
    the mean square starts at 1, ``eps`` is added inside the square root and the learning rate
    is applied inside the momentum, as in ``tf.train.RMSPropOptimizer``."""

    name: Literal["rmsprop", "sgd"] = "rmsprop"  # paper: RMSProp (TensorFlow semantics, see above)
    lr: float = 0.064  # paper: maximum learning rate 0.064 for a batch of 1024 …
    lr_batch: int = 1024  # … scaled linearly with the global batch size [Goyal et al.]
    momentum: float = 0.9  # paper: 0.9
    rmsprop_decay: float = 0.9  # TF's rho
    eps: float = 0.001  # TF EfficientNet's RMSProp epsilon
    nesterov: bool = True  # sgd only
    weight_decay: float = 1e-5  # paper: l2 weight decay 1e-5
    decay_norm_and_bias: bool = False  # TF recipes leave BatchNorm parameters and biases undecayed
    grad_clip: float | None = None  # clip the global gradient norm; None: off

    def validate(self) -> None:
        if not 0 < self.lr < math.inf or self.lr_batch < 1:
            raise NetAdaptError(f"optim.lr must be positive and optim.lr_batch at least 1, got {self.lr}, {self.lr_batch}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise NetAdaptError(f"optim.grad_clip must be positive, got {self.grad_clip}")
        for key in ("momentum", "rmsprop_decay"):
            if not 0 <= getattr(self, key) < 1:
                raise NetAdaptError(f"optim.{key} must be in [0, 1), got {getattr(self, key)}")
        if self.eps <= 0 or self.weight_decay < 0:
            raise NetAdaptError(
                f"optim.eps must be positive and optim.weight_decay not negative, got {self.eps}, {self.weight_decay}"
            )


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, a function of the optimizer step."""

    name: Literal["step", "cosine", "constant"] = "step"  # step: x decay every decay_epochs (paper); cosine: to min_factor
    decay: float = 0.963  # paper: "decayed by 0.963 every 3 epochs"
    decay_epochs: float = 3.0  # step: epochs between decays
    warmup_epochs: float = 0.0  # linear warm-up (not in the paper; TF's EfficientNet recipe uses 5)
    min_factor: float = 0.0  # cosine: final learning rate as a fraction of the maximum

    def validate(self) -> None:
        if self.decay_epochs <= 0 or self.warmup_epochs < 0:
            raise NetAdaptError("schedule.decay_epochs must be positive and schedule.warmup_epochs not negative")
        if not 0 < self.decay <= 1 or not 0 <= self.min_factor <= 1:
            raise NetAdaptError(
                f"schedule.decay must be in (0, 1] and schedule.min_factor in [0, 1], got {self.decay}, {self.min_factor}"
            )


@dataclass
class OrderedDropoutConfig:
    """Ordered dropout (paper §2.3) and options that go beyond the paper (docs/training.md)."""

    enabled: bool = True  # False: plain training of the initial network only
    kernels: bool = True  # also draw per-image superkernel sizes
    sandwich: bool = False  # beyond the paper: every batch holds the largest and smallest sub-network
    distill: float = 0.0  # beyond the paper: weight of in-place distillation from the largest sub-network
    # Beyond the paper, a progressive schedule (Once-for-All's order): the first `full_epochs`
    # train the initial network alone, the next `width_epochs` vary widths without removing any
    # block or layer -- the narrowest width allowed falling linearly from the full width to the
    # space's narrowest (progressive shrinking) --, the rest vary everything.
    full_epochs: float = 0.0
    width_epochs: float = 0.0  # see full_epochs
    # Share of the images that run without each removable block (None: one in the number of
    # width choices, the share a width-0 choice would get).
    block_drop: float | None = None
    # None: every layer draws its width independently (paper §2.3).  k: each image draws one
    # width level and every layer keeps a width within k choices of it (beyond the paper).
    spread: int | None = None
    # None: every image draws its own sub-network (paper §2.3).  g: every run of g images shares
    # one sub-network and is normalized with its own BatchNorm statistics (beyond the paper;
    # docs/training.md).
    group_size: int | None = None
    # Beyond the paper: the share of the images (of the groups, with group_size) that train the
    # largest sub-network, the initial network (the sandwich rule alone gives it one).
    largest_share: float = 0.0
    # Beyond the paper (BigNAS's sandwich): every step also trains the largest sub-network on
    # the whole batch with the labels, a second forward-backward pass; with ``distill`` the
    # ordered-dropout pass distills from that pass's outputs instead of a pass without gradients.
    largest_pass: bool = False

    def validate(self) -> None:
        if not 0.0 <= self.distill <= 1.0:
            raise NetAdaptError(f"ordered_dropout.distill must be in [0, 1], got {self.distill}")
        if self.full_epochs < 0 or self.width_epochs < 0:
            raise NetAdaptError("ordered_dropout.full_epochs and ordered_dropout.width_epochs must not be negative")
        if self.spread is not None and self.spread < 0:
            raise NetAdaptError(f"ordered_dropout.spread must be 0 or more, or null, got {self.spread}")
        if self.group_size is not None and self.group_size < 1:
            raise NetAdaptError(f"ordered_dropout.group_size must be 1 or more, or null, got {self.group_size}")
        if not 0.0 <= self.largest_share < 1.0:
            raise NetAdaptError(f"ordered_dropout.largest_share must be in [0, 1), got {self.largest_share}")
        if self.block_drop is not None and not 0.0 <= self.block_drop <= 1.0:
            raise NetAdaptError(f"ordered_dropout.block_drop must be in [0, 1] or null, got {self.block_drop}")

    def phase(self, epoch: float) -> tuple[str, float]:
        """What a batch at (fractional) ``epoch`` may vary -- ``full``, ``width`` or ``all`` --
        and the narrowest width fraction it may draw (progressive shrinking in the width phase)."""
        if epoch < self.full_epochs:
            return "full", 1.0
        if epoch < self.full_epochs + self.width_epochs:
            return "width", 1.0 - (epoch - self.full_epochs) / self.width_epochs
        return "all", 0.0


@dataclass
class SupernetTrainConfig:
    """Everything :func:`netadapt.train.train_supernet` needs; written as ``config.yaml`` in the run folder.

    The defaults are the paper's ImageNet recipe (§4.1.1).  A mapping may name a recipe instead
    (``recipe: small``, :mod:`netadapt.train.recipes`): its settings go under the mapping's own,
    and the resolved config written to the run folder holds every value.
    """

    run_dir: str = "runs/supernet"  # netadapt run sets it to RUN_DIR/supernet (and final/, initial/, baseline/)
    seed: int = 0  # seeds data order, augmentation, ordered dropout and dropout (per rank)
    epochs: int = 10  # super-network training epochs (final.epochs: None reuses it)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ordered_dropout: OrderedDropoutConfig = field(default_factory=OrderedDropoutConfig)
    label_smoothing: float = 0.1  # not stated in the paper; TF's EfficientNet/MnasNet recipe value
    ema_decay: float | None = 0.9998  # paper: exponential moving average 0.9998; None: off
    accumulate: int = 1  # micro-batches per optimizer step (per process)
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # autocast on GPU; CPU always trains in fp32
    channels_last: bool = True  # on GPUs; on CPUs for a fixed network trained compact (faster there)
    compile: bool = False  # torch.compile the training forward (opt-in)
    # Training one discovered network instead of the whole super-network (netadapt run's final
    # stage): only the sub-network of this architecture JSON file is trained (every image runs
    # it; ordered dropout must then be off), optionally starting from a super-network file's
    # weights and distilling from a teacher super-network file's full network.
    architecture: str | None = None
    # Train `architecture` inside the full super-network's tensors with fixed masks instead of as
    # its extracted compact network: the same result (tests/test_train_final.py) at the full cost.
    masked: bool = False
    init_from: str | None = None  # a super-network file whose weights start training
    # Beyond the paper (what a user with a trained model has; NetAdaptV1 starts there too): first
    # train the initial network plainly (no ordered dropout) for this many epochs in
    # RUN_DIR/pretrained, then start the super-network from it.  0: off; ignored with init_from.
    pretrain_epochs: int = 0
    # Depth (paper §4.2.1, appendix A.2): an ImageNet MobileNetV1 checkpoint whose weights start
    # FastDepth's encoder (formats: netadapt.depth.load_encoder_); init_from, when also given,
    # overrides it.  Applied when a run starts, never on resume.
    init_encoder: str | None = None
    teacher: str | None = None  # a super-network file whose full network is distilled from (paper appendix A.1)
    teacher_weight: float = 0.5  # weight of the distillation loss when a teacher is given
    deterministic: bool = False  # torch.use_deterministic_algorithms during training
    device: str = "auto"  # auto | cpu | cuda | cuda:N (torchrun: cuda:LOCAL_RANK)
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints; 0: every epoch only
    eval_every: int = 1  # epochs between validation passes (the last epoch always evaluates)
    # Validation of sub-networks recalibrates each one's BatchNorm on this many training images
    # (the shared statistics fit no single sub-network; the search recalibrates the same way).
    val_calibration_images: int = 500
    log_every: int = 50  # steps between log lines when no progress bar is shown
    progress: bool = True  # tqdm progress bar (only on a terminal, only on rank 0)
    tensorboard: bool = True  # also write TensorBoard scalars when tensorboard is installed
    # A mean training loss above this (over the ≤ 10 steps between two checks) stops training
    # as diverged, like a loss that is not finite; null: only non-finite losses stop it.  Far
    # above the loss of an untrained network (cross-entropy ln C, depth L1 in metres).
    max_loss: float | None = 1000.0

    @staticmethod
    def expand_mapping(data: dict[str, Any]) -> dict[str, Any]:
        """A config mapping with ``recipe: NAME`` replaced by the named recipe's settings, under
        the mapping's own (:mod:`netadapt.train.recipes`)."""
        return apply_recipe(data, default_epochs=SupernetTrainConfig.epochs)

    def validate(self) -> None:
        if self.epochs < 1:
            raise NetAdaptError(f"epochs must be at least 1, got {self.epochs}")
        if self.accumulate < 1:
            raise NetAdaptError(f"accumulate must be at least 1, got {self.accumulate}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise NetAdaptError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise NetAdaptError(f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        if self.val_calibration_images < 1:
            raise NetAdaptError(f"val_calibration_images must be at least 1, got {self.val_calibration_images}")
        if self.checkpoint_every < 0 or self.eval_every < 1 or self.log_every < 1:
            raise NetAdaptError("checkpoint_every must be ≥ 0, eval_every and log_every ≥ 1")
        if self.model.dropout is not None and not 0.0 <= self.model.dropout < 1.0:
            raise NetAdaptError(f"model.dropout must be in [0, 1), got {self.model.dropout}")
        if self.pretrain_epochs < 0:
            raise NetAdaptError(f"pretrain_epochs must be 0 or more, got {self.pretrain_epochs}")
        if self.architecture is not None and self.ordered_dropout.enabled:
            raise NetAdaptError("training a fixed architecture needs ordered_dropout.enabled: false")
        if self.max_loss is not None and self.max_loss <= 0:
            raise NetAdaptError(f"max_loss must be positive or null, got {self.max_loss}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise NetAdaptError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")
        for part in (self.data, self.optim, self.schedule, self.ordered_dropout):
            part.validate()


#: Keys that may change when a run resumes (they do not change what is computed).
RESUMABLE_CHANGES = frozenset(
    {
        "run_dir",
        "checkpoint_every",
        "log_every",
        "progress",
        "tensorboard",
        "compile",
        "device",
        "data.workers",
        "data.pin_memory",
        "data.persistent_workers",
        "data.eval_batch_size",
        "data.root",
        "max_loss",
    }
)

#: Keys holding paths; a rerun from a moved or copied run folder whose paths name the same files
#: relative to the folder is the same run (see :func:`netadapt.config.same_relative_path`).
RELOCATABLE_PATHS = frozenset({"architecture", "init_from", "init_encoder", "teacher"})

"""Super-network training with ordered dropout (paper §2.3, §4.1.1), and the pieces that
final training reuses: optimizers, the learning-rate schedule, the weight moving average,
checkpoints, distributed set-up and evaluation.  See ``docs/training.md``.
"""

from netadapt.evaluate import eval_mode, evaluate, evaluate_depth
from netadapt.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from netadapt.train.config import (
    ModelConfig,
    OptimConfig,
    OrderedDropoutConfig,
    ScheduleConfig,
    SupernetTrainConfig,
)
from netadapt.train.distributed import DistContext, distributed, resolve_device
from netadapt.train.loop import CONFIG_FILE, SUPERNET_FILE, build_model, deterministic_mode, train_supernet
from netadapt.train.optim import ModelEma, RMSpropTF, build_optimizer, lr_factor, scaled_lr, set_lr
from netadapt.train.sampling import OrderedDropoutSampler, stratified_column

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "SUPERNET_FILE",
    "DistContext",
    "ModelConfig",
    "ModelEma",
    "OptimConfig",
    "OrderedDropoutConfig",
    "OrderedDropoutSampler",
    "RMSpropTF",
    "ScheduleConfig",
    "SupernetTrainConfig",
    "build_model",
    "build_optimizer",
    "deterministic_mode",
    "distributed",
    "eval_mode",
    "evaluate",
    "evaluate_depth",
    "load_checkpoint",
    "lr_factor",
    "resolve_device",
    "save_checkpoint",
    "scaled_lr",
    "set_lr",
    "stratified_column",
    "train_supernet",
]

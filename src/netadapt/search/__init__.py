"""Search: multi-layer coordinate descent (paper §2.4), its single-layer NetAdaptV1 baseline,
shared-weight sample evaluation, the run folder and time accounting.  See ``docs/search.md``.

``search(space, initial_arch, resource_fn, evaluate_fn, config, rng_seed=...)`` (also
``netadapt.mcd``) runs the plain optimizer (``optimize``) in a run folder, across ranks, with its
time recorded; ``shared_weight_evaluator`` and ``finetune_evaluator`` make its ``evaluate_fn``
from a super-network; ``run_search`` does everything ``netadapt search`` does.
"""

from netadapt.search.config import SearchConfig
from netadapt.search.driver import search
from netadapt.search.evaluate import (
    EvalConfig,
    SampleEvaluator,
    recalibrate_bn_,
    recalibrated_bn,
    seeded_batches,
    shared_weight_evaluator,
    top1_metric,
)
from netadapt.search.family import FamilyMember, TrajectoryPoint, build_family
from netadapt.search.finetune import finetune_evaluator
from netadapt.search.optimizer import EvaluateFn, ResourceFn, SearchResult, check_search_inputs, optimize
from netadapt.search.run import SearchRunConfig, run_search
from netadapt.search.timing import StepTime, format_timing_table, load_timing, record_step

__all__ = [
    "EvalConfig",
    "EvaluateFn",
    "FamilyMember",
    "ResourceFn",
    "SampleEvaluator",
    "SearchConfig",
    "SearchResult",
    "SearchRunConfig",
    "StepTime",
    "TrajectoryPoint",
    "build_family",
    "check_search_inputs",
    "finetune_evaluator",
    "format_timing_table",
    "load_timing",
    "optimize",
    "recalibrate_bn_",
    "recalibrated_bn",
    "record_step",
    "run_search",
    "search",
    "seeded_batches",
    "shared_weight_evaluator",
    "top1_metric",
]

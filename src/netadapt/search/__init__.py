"""Search: multi-layer coordinate descent (paper §2.4), its single-layer NetAdaptV1 baseline,
shared-weight sample evaluation, the run folder and time accounting.  See ``docs/search.md``.

``search(space, initial_arch, resource_fn, evaluate_fn, config, rng_seed=...)`` runs the plain
optimizer (``optimize``) in a run folder, across ranks, with its time recorded; ``shared_weight_evaluator`` and ``finetune_evaluator`` make its ``evaluate_fn`` from a
super-network; ``run_search`` does everything ``netadapt search`` does.
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


def _make_callable() -> None:
    """Let ``netadapt.search(...)`` call :func:`search` (the API promised by issue 5) while
    ``netadapt.search`` stays this package, so ``netadapt.search.run_search`` and submodule
    imports keep working.

    A plain function ``netadapt.search`` cannot coexist with this package: importing any
    ``netadapt.search.*`` module sets the attribute ``search`` of ``netadapt`` to the package,
    replacing the function.  A module class with ``__call__`` is the documented way (Python
    reference, "Customizing module attribute access") to keep both spellings.
    """
    import sys
    import types

    class _SearchModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return search(*args, **kwargs)

    sys.modules[__name__].__class__ = _SearchModule


_make_callable()

"""The coordinate descent optimizer with toy resource and accuracy functions (milliseconds)."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from netadapt.arch.space import LayerSpec, SearchSpace, width_choices
from netadapt.errors import NetAdaptError
from netadapt.io import read_jsonl
from netadapt.search import SearchConfig, StepTime, build_family, format_timing_table, load_timing, search
from netadapt.search.family import TrajectoryPoint
from netadapt.search.records import record_score, record_score_name
from netadapt.search.shrink import Proposal, Shrinker
from tests.old_records import as_before_the_rename, rewrite_as_before_the_rename


def toy_space(*, ties: bool = False) -> SearchSpace:
    layers = []
    for i in range(10):
        full = 16 * (1 + i // 3)
        kernels = (3, 5, 7) if i % 2 else (1,)
        tie = (0 if i in (4, 5) else None) if ties else None  # l4 and l5 share width choices
        layers.append(
            LayerSpec(f"l{i}", "conv", full, kernels[-1], width_choices(full, 9, allow_zero=i % 3 != 0), kernels, 8, tie)
        )
    return SearchSpace("toy", tuple(layers))


def toy_resource(arch) -> float:
    """MAC-like: each layer costs in × filters × k²."""
    total, width = 0.0, 3
    for f, k in zip(arch.filters, arch.kernels, strict=True):
        total += width * f * k * k
        width = max(f, 8)
    return total


def toy_accuracy(arch) -> float:
    """Deterministic, smooth in the widths, with a small architecture-dependent wiggle."""
    value = sum(math.log1p(f) * (1 + 0.1 * i) for i, f in enumerate(arch.filters))
    value += 0.05 * sum(arch.kernels)
    wiggle = (hash((arch.filters, arch.kernels)) % 1000) / 1e5  # stable within one process
    return value + wiggle


class CountingEvaluator:
    """evaluate_fn that counts calls and archs and can fail at a chosen call."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.archs: list = []
        self.fail_at = fail_at

    def __call__(self, archs):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        self.archs.extend(archs)
        return [toy_accuracy(a) for a in archs]


def run(tmp_path=None, *, seed=0, evaluator=None, **overrides):
    space = toy_space(ties=overrides.pop("ties", False))
    config = SearchConfig(**{"samples": 12, "layers": 3, "initial_reduction": 0.05, "decay": 0.95, "target": 0.4, **overrides})
    return search(space, space.full(), toy_resource, evaluator or CountingEvaluator(), config, rng_seed=seed, run_dir=tmp_path)


def test_every_iteration_meets_its_scheduled_reduction_and_the_target_is_met():
    result = run()
    traj = result.trajectory
    assert result.reached_target and result.status == "done"
    initial = traj[0].resource
    assert result.resource <= 0.4 * initial
    config = SearchConfig(initial_reduction=0.05, decay=0.95)
    for prev, point in itertools.pairwise(traj):
        scheduled = config.reduction(point.iteration, initial)
        assert point.reduction == pytest.approx(scheduled)
        assert point.required == pytest.approx(max(prev.resource - scheduled, result.target))
        assert point.resource <= point.required
        if point is not traj[-1]:
            assert prev.resource - point.resource >= scheduled - 1e-9
    assert len(traj) > 5


def test_unclipped_search_overshoots_by_at_most_one_iteration():
    result = run(clip_to_target=False)
    traj = result.trajectory
    assert result.reached_target
    assert all(p.resource > result.target for p in traj[:-1])
    assert traj[-1].required == pytest.approx(traj[-2].resource - traj[-1].reduction)


def test_same_seed_same_search_other_seed_other_search():
    a, b, c = run(seed=3), run(seed=3), run(seed=4)
    assert [p.arch for p in a.trajectory] == [p.arch for p in b.trajectory]
    assert a.final == b.final
    assert [p.arch for p in a.trajectory] != [p.arch for p in c.trajectory]


def test_identical_samples_are_evaluated_once():
    evaluator = CountingEvaluator()
    result = run(evaluator=evaluator, samples=40, layers=1)
    assert len(evaluator.archs) == len(set(evaluator.archs)) == result.evaluations


def test_outputs_in_the_run_folder(tmp_path):
    evaluator = CountingEvaluator()
    result = run(tmp_path, evaluator=evaluator)
    history = read_jsonl(tmp_path / "history.jsonl")
    iterations = len(result.trajectory) - 1
    assert len(history) == 1 + 12 * iterations
    selected = [r for r in history if r["selected"]]
    assert [r["iteration"] for r in selected] == list(range(iterations + 1))
    for rec, point in zip(selected, result.trajectory, strict=True):
        assert rec["resource"] == point.resource and rec["score"] == point.score
        assert set(rec["resources"]) == {"resource"} and rec["eval_seconds"] >= 0
    for rec in history:
        assert rec["discarded"] == (rec["score"] is None)
        assert "accuracy" not in rec and "score_name" not in rec  # no score_name given
    trajectory = json.loads((tmp_path / "trajectory.json").read_text())
    assert [p["resource"] for p in trajectory] == [p.resource for p in result.trajectory]
    final = json.loads((tmp_path / "final_arch.json").read_text())
    assert [row["filters"] for row in final["layers"]] == list(result.final.filters)
    assert final["layers"][0]["name"] == "l0"
    family = json.loads((tmp_path / "family.json").read_text())
    assert len(family) == len(result.family)
    state = json.loads((tmp_path / "search_state.json").read_text())
    assert state["status"] == "done" and state["iteration"] == iterations
    steps = load_timing(tmp_path / "timing.json")
    assert steps["sample_evaluation"].wall_seconds > 0 and steps["sample_evaluation"].devices == 1


def test_samples_that_cannot_reach_the_reduction_are_discarded_and_recorded(tmp_path):
    # one layer per sample and a large reduction: shrinking most single layers to their
    # minimum cannot remove 20% of the network
    result = run(tmp_path, layers=1, samples=None, initial_reduction=0.2, target=0.5)
    assert result.reached_target
    assert result.trajectory[1].resource <= result.trajectory[0].resource * 0.8
    history = read_jsonl(tmp_path / "history.jsonl")
    discarded = [r for r in history if r["discarded"]]
    assert discarded and all(r["score"] is None and not r["selected"] for r in discarded)


@pytest.mark.parametrize("chunk", [0, 1])
@pytest.mark.parametrize("fail_at", [1, 2, 5])
def test_resume_after_a_crash_ends_with_the_same_result(tmp_path, chunk, fail_at):
    reference_eval = CountingEvaluator()
    reference = run(tmp_path / "ref", evaluator=reference_eval, eval_chunk=chunk)

    crashing = CountingEvaluator(fail_at=fail_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "run", evaluator=crashing, eval_chunk=chunk)
    resumed_eval = CountingEvaluator()
    resumed = run(tmp_path / "run", evaluator=resumed_eval, eval_chunk=chunk)

    assert resumed.final == reference.final
    assert [(p.arch, p.resource, p.score) for p in resumed.trajectory] == [
        (p.arch, p.resource, p.score) for p in reference.trajectory
    ]
    # nothing evaluated twice across the two sessions
    assert len(crashing.archs) + len(resumed_eval.archs) == len(reference_eval.archs)

    def strip(records):
        return [{k: v for k, v in r.items() if k != "eval_seconds"} for r in records]

    assert strip(read_jsonl(tmp_path / "run" / "history.jsonl")) == strip(read_jsonl(tmp_path / "ref" / "history.jsonl"))
    for name in ("trajectory.json", "final_arch.json", "family.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text()


def test_records_of_this_version_and_earlier_ones_read_alike():
    """Before the rename a record held its score under "accuracy" and the score's name under "score"."""
    new = {"iteration": 1, "score": 0.25, "score_name": "rmse", "discarded": False}
    old = as_before_the_rename(new)
    assert old == {"iteration": 1, "accuracy": 0.25, "score": "rmse", "discarded": False}
    for record in (new, old):
        assert (record_score(record), record_score_name(record)) == (0.25, "rmse")
    for record in ({"score": None}, {"accuracy": None, "score": "top1"}):  # a discarded sample
        assert record_score(record) is None
    assert record_score_name({"score": 0.5}) is None and record_score_name({"accuracy": 0.5}) is None


def test_a_run_folder_written_before_the_score_rename_resumes(tmp_path):
    """An interrupted search of an earlier version continues from its records (score under
    "accuracy"), evaluates nothing twice and ends as an uninterrupted search; a finished one reruns
    without evaluating anything."""
    space = toy_space()
    config = SearchConfig(samples=12, layers=3, initial_reduction=0.05, decay=0.95, target=0.4)

    def go(folder, evaluator):
        return search(space, space.full(), toy_resource, evaluator, config, rng_seed=0, run_dir=folder, score_name="top1")

    reference = go(tmp_path / "ref", CountingEvaluator())
    crashing = CountingEvaluator(fail_at=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        go(tmp_path / "run", crashing)
    rewrite_as_before_the_rename(tmp_path / "run")
    written = read_jsonl(tmp_path / "run" / "history.jsonl")
    assert written and all("accuracy" in r and r["score"] == "top1" for r in written)

    resumed_eval = CountingEvaluator()
    resumed = go(tmp_path / "run", resumed_eval)
    assert (resumed.final, resumed.score, resumed.score_name) == (reference.final, reference.score, "top1")
    assert [(p.arch, p.score) for p in resumed.trajectory] == [(p.arch, p.score) for p in reference.trajectory]
    assert len(crashing.archs) + len(resumed_eval.archs) == resumed.evaluations == reference.evaluations  # none twice

    def scores(folder):  # the old lines kept as they were, the new ones in this version's keys
        return [(r["arch"], record_score(r), record_score_name(r)) for r in read_jsonl(folder / "history.jsonl")]

    assert scores(tmp_path / "run") == scores(tmp_path / "ref")
    for name in ("trajectory.json", "family.json", "final_arch.json"):
        assert (tmp_path / "run" / name).read_text() == (tmp_path / "ref" / name).read_text()

    rewrite_as_before_the_rename(tmp_path / "ref")  # a finished search of an earlier version
    again = CountingEvaluator()
    assert go(tmp_path / "ref", again).trajectory == reference.trajectory and again.calls == 0


def test_resume_survives_a_torn_last_line(tmp_path):
    crashing = CountingEvaluator(fail_at=4)
    with pytest.raises(RuntimeError):
        run(tmp_path, evaluator=crashing, eval_chunk=1)
    with open(tmp_path / "evaluated.jsonl", "a") as f:
        f.write('{"filters": [1, 2')  # a crash in the middle of an append
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"iteration": 99')
    resumed = run(tmp_path, eval_chunk=1)
    assert resumed.final == run().final
    assert all(r["iteration"] < 99 for r in read_jsonl(tmp_path / "history.jsonl"))


def test_rerunning_a_finished_search_evaluates_nothing(tmp_path):
    first = run(tmp_path)
    again_eval = CountingEvaluator()
    again = run(tmp_path, evaluator=again_eval)
    assert again.final == first.final and again_eval.calls == 0


def test_resume_with_other_settings_is_refused(tmp_path):
    run(tmp_path)
    with pytest.raises(NetAdaptError, match="different config"):
        run(tmp_path, samples=13)
    with pytest.raises(NetAdaptError, match="different rng_seed"):
        run(tmp_path, seed=1)


def test_scd_equals_mcd_with_one_layer_and_one_sample_per_layer(tmp_path):
    scd = run(tmp_path / "scd", optimizer="scd", samples=5, layers=7)  # scd ignores J and L
    mcd = run(tmp_path / "mcd", optimizer="mcd", samples=None, layers=1)
    assert [p.arch for p in scd.trajectory] == [p.arch for p in mcd.trajectory]
    assert scd.final == mcd.final
    scd_hist, mcd_hist = read_jsonl(tmp_path / "scd" / "history.jsonl"), read_jsonl(tmp_path / "mcd" / "history.jsonl")
    assert len(scd_hist) == len(mcd_hist)

    def per_iteration(history):
        out: dict = {}
        for r in history:
            out.setdefault(r["iteration"], set()).add(json.dumps([r["arch"], r["score"], r["selected"]]))
        return out

    assert per_iteration(scd_hist) == per_iteration(mcd_hist)
    # SCD lists the layers in space order: the first iteration shrinks l0, l1, ...
    first = [r["shrunk"][0]["layers"] for r in scd_hist if r["iteration"] == 1]
    assert first == [f"l{i}" for i in range(10)]


def test_filters_only_shrinking_never_touches_kernels():
    result = run(shrink="filters", target=0.6)
    assert result.reached_target
    assert all(p.arch.kernels == result.trajectory[0].arch.kernels for p in result.trajectory)


def test_tied_layers_move_together(tmp_path):
    run(tmp_path, ties=True)
    space = toy_space(ties=True)
    history = read_jsonl(tmp_path / "history.jsonl")
    tied = [r for r in history if any(s["layers"] == "l4+l5" for s in r["shrunk"])]
    assert tied
    for rec in history:
        filters = [row["filters"] for row in rec["arch"]["layers"]]
        assert filters[4] == filters[5]
        space.validate(space.make(filters, [row["kernel"] for row in rec["arch"]["layers"]]))
    assert any(row["filters"] < 32 for r in tied for row in r["arch"]["layers"][4:6])


def test_ratio_selection_picks_the_smallest_score_drop_per_resource_drop(tmp_path):
    result = run(tmp_path, selection="ratio", samples=30)
    history = read_jsonl(tmp_path / "history.jsonl")
    prev = result.trajectory[0]
    first = [r for r in history if r["iteration"] == 1 and not r["discarded"]]
    ratios = [(prev.score - r["score"]) / (prev.resource - r["resource"]) for r in first]
    chosen = next(r for r in first if r["selected"])
    assert (prev.score - chosen["score"]) / (prev.resource - chosen["resource"]) == min(ratios)


def test_lower_is_better_metrics_pick_the_smallest_value(tmp_path):
    def error(archs):
        return [-toy_accuracy(a) for a in archs]

    space = toy_space()
    config = SearchConfig(samples=12, layers=3, initial_reduction=0.05, target=0.5, higher_is_better=False)
    result = search(space, space.full(), toy_resource, error, config, rng_seed=0, run_dir=tmp_path)
    history = read_jsonl(tmp_path / "history.jsonl")
    first = [r for r in history if r["iteration"] == 1 and not r["discarded"]]
    assert next(r for r in first if r["selected"])["score"] == min(r["score"] for r in first)
    assert result.reached_target


def test_several_resources_are_recorded_and_one_constrained(tmp_path):
    space = toy_space()

    def resources(arch):
        return {"params": float(sum(arch.filters)), "macs": toy_resource(arch)}

    config = SearchConfig(samples=8, layers=3, initial_reduction=0.05, target=0.5, constrained="macs")
    result = search(space, space.full(), resources, CountingEvaluator(), config, rng_seed=0, run_dir=tmp_path)
    assert result.resource == result.resources["macs"] <= 0.5 * toy_resource(space.full())
    assert set(read_jsonl(tmp_path / "history.jsonl")[-1]["resources"]) == {"params", "macs"}


def test_absolute_target_and_family_budgets():
    space = toy_space()
    initial = toy_resource(space.full())
    result = run(target=0.3 * initial, target_mode="absolute", budgets=(0.8 * initial, 0.5 * initial, 0.3 * initial))
    assert result.resource <= 0.3 * initial
    assert [m.budgets for m in result.family] == [(0.8 * initial,), (0.5 * initial,), (0.3 * initial,)]
    for member in result.family:
        assert member.point.resource <= member.budgets[0]


def test_family_resources_strictly_decrease_and_dominated_points_drop():
    result = run()
    resources = [m.point.resource for m in result.family]
    assert all(a > b for a, b in itertools.pairwise(resources))

    space = toy_space()
    arch = space.full()

    def point(i, resource, score):
        return TrajectoryPoint(i, arch, {"r": resource}, resource, score, 0.0, resource)

    points = [point(0, 10, 0.9), point(1, 9, 0.92), point(2, 9, 0.80), point(3, 7, 0.85), point(4, 5, 0.7)]
    family = build_family(points)
    assert [m.point.iteration for m in family] == [1, 3, 4]  # 0 is dominated by 1; 2 repeats 9
    by_budget = build_family(points, [9.5, 8, 7.5, 4])
    assert [(m.budgets, m.point.iteration) for m in by_budget] == [((9.5,), 1), ((8, 7.5), 3)]
    lower = build_family(points, higher_is_better=False)  # the smallest error is also the smallest
    assert [m.point.iteration for m in lower] == [4]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target": 2.0, "target_mode": "absolute"}, "unreachable"),
        ({"target": 1e12, "target_mode": "absolute"}, "above the initial"),
        ({"target": 1.5}, "fractional target"),
        ({"samples": 0}, "samples"),
        ({"decay": 1.5}, "decay"),
    ],
)
def test_bad_input_is_a_one_line_error(overrides, message):
    with pytest.raises(NetAdaptError, match=message) as info:
        run(**overrides)
    assert "\n" not in str(info.value)


def test_a_metric_failing_on_the_initial_network_stops_before_evaluating():
    space = toy_space()
    evaluator = CountingEvaluator()

    def broken(arch):
        raise OSError("device not connected")

    with pytest.raises(NetAdaptError, match="initial network: OSError: device not connected"):
        search(space, space.full(), broken, evaluator, SearchConfig(), rng_seed=0)
    assert evaluator.calls == 0


def test_shrinking_steps():
    space = toy_space()
    shrinker = Shrinker(space)
    full = space.full()
    u = 1  # l1: widths of 16 in steps of 2, kernels 3, 5, 7
    assert shrinker.step(full, u, "filters").filters[1] == 14
    assert shrinker.step(full, u, "kernel").kernels[1] == 5
    both = shrinker.step(full, u, "both")
    assert (both.filters[1], both.kernels[1]) == (14, 5)
    at3 = full.replace(kernels=[3 if i == 1 else k for i, k in enumerate(full.kernels)])
    assert shrinker.feasible_modes(at3, u) == ("filters",)
    assert shrinker.step(at3, u, "kernel").filters[1] == 14  # exhausted dimension: the other one
    smallest = shrinker.minimum(full)
    assert shrinker.shrinkable(smallest) == []
    # shrinking until a resource is met cycles over the proposal's units
    sample, ok = shrinker.shrink_until(full, Proposal((1, 2), ("filters", "filters")), toy_resource(full) * 0.99, toy_resource)
    assert ok and toy_resource(sample) <= toy_resource(full) * 0.99
    assert abs((16 - sample.filters[1]) / 2 - (16 - sample.filters[2]) / 2) <= 1


def test_mcd_deals_units_evenly():
    space = toy_space()
    proposals = Shrinker(space).propose_mcd(space.full(), seed=0, iteration=1, samples=20, layers=3)
    assert len(proposals) == 20
    assert all(len(set(p.units)) == 3 for p in proposals)
    counts = [sum(u in p.units for p in proposals) for u in range(10)]
    assert max(counts) - min(counts) <= 1


def test_timing_table_has_the_papers_breakdown(tmp_path):
    from netadapt.search import record_step

    path = tmp_path / "timing.json"
    record_step(path, "supernet_training", StepTime(3600 * 2, devices=4))
    record_step(path, "sample_evaluation", StepTime(1800, devices=2))
    steps = load_timing(path)
    assert steps["supernet_training"].device_hours == 8 and steps["sample_evaluation"].device_hours == 1
    table = format_timing_table(steps)
    assert "search time: 9 device-hours (8, 1, -)" in table


@pytest.mark.parametrize(
    ("evaluate_fn", "message"),
    [
        (lambda archs: 0.5, "must return one score per architecture \\(a list\\), got 0.5"),
        (lambda archs: ["high"] * len(archs), "evaluate_fn returned 'high'; a score is a number"),
        (lambda archs: [None] * len(archs), "evaluate_fn returned None"),
        (lambda archs: [math.nan] * len(archs), "scored the initial network nan"),
    ],
)
def test_an_evaluate_fn_that_does_not_score_is_a_one_line_error(evaluate_fn, message):
    with pytest.raises(NetAdaptError, match=message) as info:
        run(evaluator=evaluate_fn)
    assert "\n" not in str(info.value)


def test_a_sample_scored_nan_is_never_chosen(tmp_path):
    """A diverged sample (NaN) stays in the records and loses to every finite one."""

    def some_nan(archs):
        return [math.nan if sum(a.filters) % 3 == 0 and a != toy_space().full() else toy_accuracy(a) for a in archs]

    result = run(tmp_path, evaluator=some_nan)
    assert result.reached_target and all(math.isfinite(p.score) for p in result.trajectory)
    scores = [record_score(r) for r in read_jsonl(tmp_path / "evaluated.jsonl")]
    assert any(math.isnan(x) for x in scores) and any(math.isfinite(x) for x in scores)


def test_a_search_whose_samples_all_fail_stops_as_stalled(tmp_path):
    # no single layer holds 90% of the network: every one-layer sample is discarded
    result = run(tmp_path, layers=1, samples=None, initial_reduction=0.9, target=0.5)
    assert result.status == "stalled" and not result.reached_target
    assert len(result.trajectory) == 1
    assert json.loads((tmp_path / "search_state.json").read_text())["status"] == "stalled"


def test_shrinking_a_removable_block_past_its_fewest_filters_removes_it_whole():
    from netadapt import build_supernet

    space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10).space
    shrinker = Shrinker(space)
    group = space.removal_groups()[2]
    conv = next(i for i in group if space.layers[i].kind != "se")
    unit = next(u for u, members in enumerate(shrinker.units) if conv in members)
    arch, steps = space.full(), 0
    while shrinker.can_shrink_filters(arch, unit):
        arch = space.validate(shrinker.step(arch, unit, "filters"))
        steps += 1
    nonzero = [w for w in space.layers[conv].widths if w > 0]
    assert steps == len(nonzero)  # every non-zero width, then the block
    assert space.removed_blocks(arch) == [group]
    assert not shrinker.feasible_modes(arch, unit)  # a removed block shrinks no further
    assert shrinker.step(arch, unit, "kernel") is None
    assert space.validate(shrinker.minimum(space.full())).filters == space.smallest().filters


def test_remove_blocks_any_removes_a_chosen_block_whole_from_any_width():
    from netadapt import build_supernet
    from netadapt.search.shrink import REMOVE

    space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10).space
    narrowest, anywhere = Shrinker(space), Shrinker(space, remove_blocks="any")
    group = space.removal_groups()[2]
    conv = next(i for i in group if space.layers[i].kind != "se")
    unit = next(u for u, members in enumerate(anywhere.units) if conv in members)
    outside = next(u for u, members in enumerate(anywhere.units) if all(anywhere._block[i] is None for i in members))
    full = space.full()
    base = narrowest.feasible_modes(full, unit)
    assert base and REMOVE not in base  # the default: no fourth mode
    assert anywhere.feasible_modes(full, unit) == (*base, REMOVE)
    assert anywhere.feasible_modes(full, outside) == narrowest.feasible_modes(full, outside)  # only units of removable blocks
    gone = space.validate(anywhere.step(full, unit, REMOVE))
    assert space.removed_blocks(gone) == [group]
    assert [f for i, f in enumerate(gone.filters) if i not in group] == [f for i, f in enumerate(full.filters) if i not in group]
    assert gone.kernels == full.kernels
    assert not anywhere.feasible_modes(gone, unit)  # a removed block shrinks no further
    assert narrowest.step(full, unit, REMOVE) is not None  # without the option, "remove" falls back to filters
    assert space.removed_blocks(narrowest.step(full, unit, REMOVE)) == []


def test_remove_blocks_any_lets_a_search_remove_blocks_and_is_checked(tmp_path):
    from netadapt import build_supernet
    from netadapt.search import search

    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10, input_size=32)
    space = net.space

    def macs(arch):
        return float(net.macs(arch))

    def score(archs):  # favours removed blocks: the search must be able to reach them
        return [len(space.removed_blocks(a)) - 1e-9 * macs(a) for a in archs]

    found = {}
    for mode in ("narrowest", "any"):
        config = SearchConfig(samples=6, layers=3, initial_reduction=0.1, target=0.6, remove_blocks=mode)
        result = search(space, space.full(), macs, score, config, rng_seed=0, run_dir=tmp_path / mode)
        found[mode] = len(space.removed_blocks(result.final))
    assert found["any"] >= found["narrowest"] + 2, found
    with pytest.raises(NetAdaptError, match="remove_blocks"):
        SearchConfig(remove_blocks="sometimes")
    # a folder written with the default still resumes (the default is not stored)
    assert "remove_blocks" not in json.loads((tmp_path / "narrowest" / "search_config.json").read_text())["config"]


@pytest.mark.parametrize(
    "reduction, decay, expected", [(0.1, 0.98, 6), (0.03, 0.98, 21), (0.25, 0.98, 3), (0.1, 1.0, 5), (0.01, 0.9, None)]
)
def test_expected_iterations_follow_the_reduction_schedule(reduction, decay, expected):
    """The search's log says how many iterations to expect: the schedule's Σ reductions reach the gap."""
    config = SearchConfig(initial_reduction=reduction, decay=decay)
    n = config.expected_iterations(100.0, 50.0)
    assert n == expected
    if n is not None:  # n iterations suffice and n - 1 do not
        total = lambda k: sum(config.reduction(i, 100.0) for i in range(1, k + 1))  # noqa: E731
        assert total(n) >= 50 - 1e-9 > total(n - 1)


def test_eta_text():
    from netadapt.progress import Eta, format_duration

    assert [format_duration(s) for s in (5, 125, 7260)] == ["5s", "2m05s", "2h01m"]
    eta = Eta(total=10, done=2)
    assert "ETA" not in eta.text(2)
    eta.began -= 30  # 30 s for 3 units: 5 left take 50 s
    assert eta.text(5).endswith("ETA 50s")


def test_configs_built_in_python_are_type_checked():
    """A SearchConfig made in Python gets the same one-line errors as a config file's values."""
    for kwargs, message in [
        ({"target": "x"}, "target: expected a number, got 'x'"),
        ({"samples": "x"}, "samples: expected an integer"),
        ({"budgets": ["a"]}, r"budgets\[0\]: expected a number"),
    ]:
        with pytest.raises(NetAdaptError, match=message):
            SearchConfig(**kwargs)
    space = toy_space()
    with pytest.raises(NetAdaptError, match="config must be a SearchConfig"):
        search(space, space.full(), toy_resource, CountingEvaluator(), {"target": 0.5}, rng_seed=0)

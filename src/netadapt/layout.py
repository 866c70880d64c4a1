"""Where each stage of ``netadapt run`` writes inside the run folder (read by the pipeline and the report).

=====================  ======================================================================
``config.yaml``         the resolved run config (a rerun with another config is refused)
``data_profile.json``   ``netadapt run --data``: what was measured of the image folder
``build.json``          how to rebuild the super-network (``SuperNet.build_config()``)
``supernet/``           super-network training run (checkpoints, ``supernet.pt``, held-out split)
``search/``             the search (``history.jsonl``, ``trajectory.json``, ``family.json``, …)
``final/``              training of the discovered network (``architecture.json``: the network)
``initial/``            training of the initial network with the same budget (a comparison)
``baseline/``           training of the uniform-scaling baseline (a comparison)
``export/``             ``model.pt`` (loadable alone), ``model.onnx``, ``model.ts``,
                        ``model.pt2``: each carries ``metadata.json`` (preprocessing, classes,
                        architecture, MACs)
``summary.json``        the headline numbers (initial, discovered, baseline; image counts)
``timing.json``         time per step (paper Table 1 breakdown)
``report/``             ``report.md`` and its plots
=====================  ======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def build(self) -> Path:
        return self.root / "build.json"

    @property
    def supernet_dir(self) -> Path:
        return self.root / "supernet"

    @property
    def search_dir(self) -> Path:
        return self.root / "search"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def timing(self) -> Path:
        return self.root / "timing.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

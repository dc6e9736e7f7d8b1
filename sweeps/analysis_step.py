"""An analysis-only preset (e.g. `python sweeps/optimus.py --preset fit`): no Ray and no trials; the study's
`analyze` step reads records already in the store, and what it returns is recorded on a parent run of its own
(values as metrics or params, artifacts as files), then drawn and summarized like a sweep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from sweeps.cli import UsageError
from sweeps.parent import experiment, finish, open_parent_run
from sweeps.plan import SweepPlan
from sweeps.study import Analysis, Context
from trainables.artifacts import encode_all


def run_analysis_step(plan: SweepPlan, figures, args: argparse.Namespace, argv: list[str], context: Context,
                      results_dir: Path, local_store: bool) -> int:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    study = plan.study
    if study.hooks.analyze is None:
        raise UsageError(f"preset {args.preset} is analysis-only but {study.name} declares no analyze step")
    started = time.perf_counter()
    result: Analysis = study.hooks.analyze(plan.base, context)  # bad or missing records: exit 2, nothing created
    artifacts = encode_all(result.artifacts)
    client = MlflowClient(context.tracking_uri)
    experiment_id = experiment(client, study.name, results_dir, local_store)
    name = f"{study.name}-{args.preset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    tags = {"analysis_only": "1", **({"source_run": result.source_run} if result.source_run else {})}
    parent_id = open_parent_run(client, experiment_id, name, plan, args, argv, tags)
    now = int(time.time() * 1000)
    numbers = {k: float(v) for k, v in result.values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    client.log_batch(parent_id, metrics=[Metric(k, v, now, 0) for k, v in numbers.items()],
                     params=[Param(k, str(v)[:500]) for k, v in result.values.items() if k not in numbers])
    from sweeps.recording import log_artifact_bytes

    for path, data in artifacts.items():
        log_artifact_bytes(client, parent_id, path, data)
    client.set_terminated(parent_id, status="FINISHED")
    elapsed = time.perf_counter() - started
    finish(study, figures, args, context.tracking_uri, experiment_id, parent_id, results_dir,
           lambda runs: f"analysis only, {len(result.values)} fitted values in {elapsed:.1f} s"
                        + (f" from sweep {result.source_run}" if result.source_run else ""))
    return 0

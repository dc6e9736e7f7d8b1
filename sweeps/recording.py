"""MLflow records of a sweep's trials: one child run per trial, nested under the sweep's parent run.

`MLflowRecorder` is a driver-side Ray Tune callback. When a trial starts it opens its run (tag
`mlflow.parentRunId`; named by the trial's swept values, e.g. `widths=256-128-64`; params: the trial's config,
what the study derives from it, what its cost counts: sweeps.plan, sweeps.costs). It buffers each report's numbers
(Tune's bookkeeping left out; `cost/device_s` added) and writes them with `log_batch` every `flush_rows` rows or
`flush_seconds` and when the trial ends, writes the artifacts and params reports carry (trainables/artifacts.py),
then closes the run with a `trial_status` tag: finished, stopped (by the scheduler), diverged or error. Closing on
the driver means a trial stopped by ASHA (whose code after its last report never runs) is closed cleanly; an epoch
already recorded is never written twice, so a trial restored from a checkpoint adds no duplicate steps.

Durability: a trial's buffer is written whenever it checkpoints, so MLflow holds every epoch up to the checkpoint
a resumed sweep restarts from. An unreachable tracking server raises nothing: records stay buffered and are
retried every `retry_seconds` (each attempt bounded by short HTTP retries), and the sweep's end waits up to
`end_wait_seconds` for it. On `--resume`, runs of trials the restored experiment does not know (started after
Tune's last snapshot, before the driver died) are tagged `orphaned` and soft-deleted: one run per trial.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import requests
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS

from sweeps.costs import cost_metrics, cost_params
from trainables.artifacts import ARTIFACTS_KEY, PARAMS_KEY
from trainables.config import encode_value

if TYPE_CHECKING:
    from sweeps.plan import SweepPlan, TrialPlan

PARENT_TAG = "sweep.parent"  # "1" on parent runs
TRIAL_TAG = "ray.trial_id"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch
# What an unreachable or failing tracking server raises through MlflowClient.
OUTAGE_ERRORS = (MlflowException, requests.exceptions.RequestException, OSError)
# What Tune adds to every result (bookkeeping, not the trial's metrics); the epoch is the step.
NOT_METRICS = frozenset(AUTO_RESULT_KEYS) | {"epoch", "done", "trial_id", "experiment_tag", "should_checkpoint"}


def metric_items(result: dict[str, Any]) -> list[tuple[str, float]]:
    """The numbers of a trial's report that MLflow records: every numeric key but Tune's own."""
    return [(key, float(value)) for key, value in result.items()
            if key not in NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool)]


def trial_status(result: dict[str, Any], epochs: int | None) -> str:
    """How a trial that completed ended; `epochs` None: a one-shot trial (it reports once)."""
    if result.get("ddp/skipped"):  # a DDP variant this machine cannot run (NCCL without GPUs)
        return "skipped"
    if result.get("diverged"):
        return "diverged"
    if result.get("target_reached"):  # the trial stopped itself at its target: that is a finished trial
        return "finished"
    if epochs is None:
        return "finished"
    return "finished" if int(result.get("epoch", 0)) >= epochs else "stopped"


def log_artifact_bytes(client: MlflowClient, run_id: str, path: str, data: bytes) -> None:
    """One artifact at `path` (e.g. "hist/layer3.npy") in a run's artifacts, from its bytes."""
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / Path(path).name
        local.write_bytes(data)
        client.log_artifact(run_id, str(local), str(Path(path).parent) if "/" in path else None)


class MLflowRecorder(tune.Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, plan: "SweepPlan",
                 flush_rows: int = MAX_BATCH, flush_seconds: float = 10.0, retry_seconds: float = 5.0,
                 end_wait_seconds: float = 120.0):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.plan = plan
        self.flush_rows = min(flush_rows, MAX_BATCH)
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self.end_wait_seconds = end_wait_seconds
        self._reset()

    def _reset(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id
        self._plans: dict[str, Any] = {}  # trial id -> its TrialPlan (its config parsed once on the driver)
        self._buffers: dict[str, list[Metric]] = {}  # metrics not yet written, per trial
        self._artifacts: dict[str, dict[str, bytes]] = {}  # artifacts not yet written, per trial: path -> bytes
        self._params: dict[str, dict[str, str]] = {}  # params a trial reported (PARAMS_KEY), not yet written
        self._last_step: dict[str, int] = {}  # last epoch buffered or found recorded, per trial
        self._trials: dict[str, Any] = {}  # trials whose run is still to be created, written or closed
        self._closing: dict[str, tuple[str, str, int]] = {}  # trial id -> (trial_status, run status, last epoch)
        self._last_flush = time.monotonic()
        self._down_since: float | None = None  # when the tracking server became unreachable
        self._next_try = 0.0
        self._orphans_checked = False

    # The Tuner pickles its callbacks into the experiment state (for --resume);
    # the client and buffers are rebuilt in the new driver.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_client", "_runs", "_plans", "_buffers", "_artifacts", "_params", "_last_step", "_trials", "_closing",
                    "_last_flush", "_down_since", "_next_try", "_orphans_checked"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            # MLflow retries a failed request 7 times with exponential backoff (minutes on a dead server),
            # blocking Tune's event loop; we retry ourselves, so keep each attempt short.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def trial_plan(self, trial) -> "TrialPlan":
        if trial.trial_id not in self._plans:
            self._plans[trial.trial_id] = self.plan.trial(trial.config)
        return self._plans[trial.trial_id]

    def _child_run(self, trial) -> str:
        """The trial's MLflow run: found by its trial-id tag (a resumed sweep) or created."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if existing:  # the sweep is being resumed (or the run was created just before an outage)
            run_id = existing[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            recorded = max((m.step for m in self.client.get_metric_history(run_id, "diverged")), default=0)
            # Epochs buffered while the run could not be looked up may already be in MLflow.
            buffer = self._buffers.get(trial.trial_id, [])
            buffer[:] = [m for m in buffer if m.step > recorded]
            self._last_step[trial.trial_id] = max(self._last_step.get(trial.trial_id, 0), recorded)
        else:
            from sweeps.plan import trial_params

            planned = self.trial_plan(trial)
            run = self.client.create_run(
                self.experiment_id, run_name=planned.name,
                tags={"mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial.trial_id, "trial_status": "running"},
            )
            run_id = run.info.run_id
            params = {**trial_params(self.plan, planned), **cost_params(planned)}
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i:i + 100])
        self._runs[trial.trial_id] = run_id
        return run_id

    def _track(self, trial) -> None:
        if trial.trial_id not in self._trials:
            self._trials[trial.trial_id] = trial
            self._buffers.setdefault(trial.trial_id, [])
            self._artifacts.setdefault(trial.trial_id, {})
            self._last_step.setdefault(trial.trial_id, 0)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._track(trial)
        self.flush(trial.trial_id)  # creates (or finds) the run now, so the UI shows running trials

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._track(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if step <= self._last_step.get(trial.trial_id, 0):
            return  # replayed after a restore from checkpoint: already recorded
        self._last_step[trial.trial_id] = step
        timestamp = int(time.time() * 1000)
        buffer = self._buffers[trial.trial_id]
        numbers = [*metric_items(result), *cost_metrics(result, self.trial_plan(trial)).items()]
        buffer.extend(Metric(key, value, timestamp, step) for key, value in numbers)
        self._artifacts[trial.trial_id].update(result.get(ARTIFACTS_KEY) or {})  # a later value of a path wins
        if result.get(PARAMS_KEY):
            self._params.setdefault(trial.trial_id, {}).update(
                {str(k): str(encode_value(v)) for k, v in result[PARAMS_KEY].items()})
        if len(buffer) >= self.flush_rows or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # A resumed trial restarts from this checkpoint: every epoch up to it must be in MLflow by then.
        self.flush(trial.trial_id)

    def on_step_begin(self, iteration, trials, **info):
        if not self._orphans_checked:
            self._guarded(self._drop_orphans, trials)

    def on_step_end(self, iteration, trials, **info):
        if self._down_since is not None and time.monotonic() >= self._next_try:
            self.flush()

    def _drop_orphans(self, trials) -> None:
        """Runs of trials unknown to the (restored) experiment: started after its last snapshot, then lost."""
        known = {t.trial_id for t in trials}
        children = self.client.search_runs([self.experiment_id],
                                           filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
                                           max_results=50_000)
        for run in children:
            if run.data.tags.get(TRIAL_TAG) not in known:
                self.client.set_tag(run.info.run_id, "trial_status", "orphaned")
                self.client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
                self.client.delete_run(run.info.run_id)
        self._orphans_checked = True

    def _guarded(self, write: Callable, *args) -> bool:
        """Run one batch of MLflow writes; on an outage keep everything buffered and return False."""
        if self._down_since is not None and time.monotonic() < self._next_try:
            return False
        try:
            write(*args)
        except OUTAGE_ERRORS as e:
            if self._down_since is None:
                self._down_since = time.monotonic()
                reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                print(f"warning: MLflow tracking server {self.tracking_uri} failed ({reason}); trials go on, "
                      f"their records are buffered and retried every {self.retry_seconds:g} s", file=sys.stderr)
            self._next_try = time.monotonic() + self.retry_seconds
            return False
        if self._down_since is not None:
            print(f"MLflow tracking server back after {time.monotonic() - self._down_since:.0f} s; "
                  f"writing the buffered records", file=sys.stderr)
            self._down_since = None
        return True

    def _write(self, tid: str) -> None:
        """Create/find the trial's run, write its buffered metrics, then close it if it ended."""
        run_id = self._child_run(self._trials[tid])
        buffer = self._buffers[tid]
        while buffer:
            self.client.log_batch(run_id, metrics=buffer[:MAX_BATCH])
            del buffer[:MAX_BATCH]  # only once written: a failed batch stays buffered
        if self._params.get(tid):  # an MLflow param is immutable: one already on the run (a resumed trial) stays
            logged = self.client.get_run(run_id).data.params
            new = [Param(k, v) for k, v in self._params[tid].items() if k not in logged]
            if new:
                self.client.log_batch(run_id, params=new)
            del self._params[tid]
        artifacts = self._artifacts.get(tid, {})
        for path in list(artifacts):
            log_artifact_bytes(self.client, run_id, path, artifacts[path])
            del artifacts[path]
        if tid in self._closing:
            status, run_status, epoch = self._closing[tid]
            self.client.set_tag(run_id, "trial_status", status)
            self.client.set_tag(run_id, "stopped_at_epoch", str(epoch))
            self.client.set_terminated(run_id, status=run_status)
            for table in (self._runs, self._plans, self._buffers, self._artifacts, self._params, self._trials,
                          self._closing):
                table.pop(tid, None)

    def flush(self, trial_id: str | None = None) -> bool:
        """Write what is buffered (one trial's or all); False while the tracking server is unreachable."""
        ok = all(self._guarded(self._write, tid) for tid in ([trial_id] if trial_id else list(self._trials))
                 if tid in self._trials)
        self._last_flush = time.monotonic()
        return ok

    def pending(self) -> int:
        """Records not yet in MLflow: buffered metrics plus runs still to be closed."""
        return (sum(len(b) for b in self._buffers.values()) + sum(len(a) for a in self._artifacts.values())
                + len(self._closing))

    def _close(self, trial, status: str, run_status: str) -> None:
        self._track(trial)
        last = trial.last_result or {}
        self._closing[trial.trial_id] = (status, run_status, int(last.get("epoch", 0)))
        self.flush(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        key = self.plan.study.trial.epochs
        epochs = int(getattr(self.trial_plan(trial).config, key)) if key else None
        self._close(trial, trial_status(trial.last_result or {}, epochs), RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, "error", RunStatus.to_string(RunStatus.FAILED))

    def on_experiment_end(self, trials, **info):
        deadline = time.monotonic() + self.end_wait_seconds
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._next_try, deadline) - time.monotonic()))
        if self.pending():
            print(f"error: MLflow tracking server {self.tracking_uri} still unreachable after "
                  f"{self.end_wait_seconds:g} s; {self.pending()} records of this sweep were not written",
                  file=sys.stderr)

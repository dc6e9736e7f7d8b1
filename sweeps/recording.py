"""MLflow records of a sweep: one parent run per invocation, one child run per trial.

`MLflowRecorder` is a driver-side Ray Tune callback. It opens a child run
(nested with the `mlflow.parentRunId` tag) when a trial starts, buffers the
per-epoch metrics and writes them with `log_batch` (every `flush_rows` rows or
`flush_seconds`, and when the trial ends), then closes the run with a
`trial_status` tag: finished, stopped (by the scheduler), diverged or error.

Writing in batches keeps recording cheap at 2000 reports per trial; closing
runs on the driver means a trial stopped by ASHA (whose code after its last
report never runs) is still closed cleanly. An epoch already recorded is never
written twice, so a trial restored from a checkpoint adds no duplicate steps.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from ray import tune

PARENT_TAG = "sweep.parent"  # "1" on parent runs
TRIAL_TAG = "ray.trial_id"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch


def param_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(map(str, value))
    return str(value)


def trial_status(result: dict[str, Any], epochs: int) -> str:
    if result.get("diverged"):
        return "diverged"
    if result.get("target_reached"):  # the trial stopped itself at its target: that is a finished trial
        return "finished"
    return "finished" if int(result.get("epoch", 0)) >= epochs else "stopped"


class MLflowRecorder(tune.Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 derived_params: Callable[[dict], dict] | None = None, epochs_key: str = "epochs",
                 flush_rows: int = MAX_BATCH, flush_seconds: float = 10.0):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.derived_params = derived_params or (lambda config: {})
        self.epochs_key = epochs_key
        self.flush_rows = min(flush_rows, MAX_BATCH)
        self.flush_seconds = flush_seconds
        self._reset()

    def _reset(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id
        self._buffers: dict[str, list[Metric]] = {}
        self._last_step: dict[str, int] = {}
        self._last_flush = time.monotonic()

    # The Tuner pickles its callbacks into the experiment state (for --resume);
    # the client and buffers are rebuilt in the new driver.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_client", "_runs", "_buffers", "_last_step", "_last_flush"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _child_run(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if existing:  # the sweep is being resumed: continue the trial's run
            run_id = existing[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(run_id, "diverged")]
            self._last_step[trial.trial_id] = max(steps, default=0)
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=str(trial),
                tags={"mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial.trial_id, "trial_status": "running"},
            )
            run_id = run.info.run_id
            params = {k: param_value(v) for k, v in trial.config.items()}
            params.update({k: param_value(v) for k, v in self.derived_params(trial.config).items()})
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i:i + 100])
            self._last_step[trial.trial_id] = 0
        self._runs[trial.trial_id] = run_id
        self._buffers[trial.trial_id] = []
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self._child_run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._child_run(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if step <= self._last_step.get(trial.trial_id, 0):
            return  # replayed after a restore from checkpoint: already recorded
        self._last_step[trial.trial_id] = step
        timestamp = int(time.time() * 1000)
        buffer = self._buffers[trial.trial_id]
        for key, value in result.items():
            if ("/" in key or key == "diverged") and isinstance(value, (int, float)) and not isinstance(value, bool):
                buffer.append(Metric(key, float(value), timestamp, step))
        if len(buffer) >= self.flush_rows or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self, trial_id: str | None = None) -> None:
        for tid in [trial_id] if trial_id else list(self._buffers):
            buffer = self._buffers.get(tid) or []
            while buffer:
                chunk, buffer[:] = buffer[:MAX_BATCH], buffer[MAX_BATCH:]
                self.client.log_batch(self._runs[tid], metrics=chunk)
        self._last_flush = time.monotonic()

    def _close(self, trial, status: str, run_status: str) -> None:
        run_id = self._child_run(trial)
        self.flush(trial.trial_id)
        last = trial.last_result or {}
        self.client.set_tag(run_id, "trial_status", status)
        self.client.set_tag(run_id, "stopped_at_epoch", str(int(last.get("epoch", 0))))
        self.client.set_terminated(run_id, status=run_status)
        self._runs.pop(trial.trial_id, None)
        self._buffers.pop(trial.trial_id, None)

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = int(trial.config.get(self.epochs_key, 0))
        self._close(trial, trial_status(trial.last_result or {}, epochs), RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, "error", RunStatus.to_string(RunStatus.FAILED))

    def on_experiment_end(self, trials, **info):
        self.flush()

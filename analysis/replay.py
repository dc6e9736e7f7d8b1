"""Replay a scheduler over recorded curves: which trials it would have stopped, and at which epochs.

    >>> from ray.tune.schedulers import ASHAScheduler
    >>> from analysis.replay import replay
    >>> scheduler = ASHAScheduler(time_attr="epoch", metric="test/rmse", mode="min", max_t=9, grace_period=1)
    >>> replay(scheduler, sweep.trials, "test/rmse")      # {run_id: epoch it was stopped at, or None}

`python -m analysis replay STUDY --scheduler asha|optimus|hyperband` (analysis/replay_cli.py) runs this over a
finished fifo sweep (analysis/recorded_curves.py) for several settings and reports what each would have saved.

The schedulers are the real ones (Ray Tune's `ASHAScheduler` and `HyperBandScheduler`, the project's
`OptimusScheduler`), called exactly as Ray Tune's controller calls them, with the recorded results instead of
training, so their decisions are the ones a live sweep whose trials produce these curves would get:

- asynchronous schedulers (ASHA, optimus), `replay`: the trials one after the other in the order they started,
  as a `--max-concurrent 1` sweep runs them. Each trial is added (`on_trial_add`), each epoch's result
  `{"epoch": k, metric: value}` is passed to `on_trial_result` until it answers STOP, and the trial's end is
  passed to `on_trial_complete` with its last result (Tune does both for a trial stopped by the scheduler and
  for one that ends by itself).
- HyperBand, `replay_synchronous`: it pauses trials at each bracket's milestone until the whole bracket gets
  there, so the order is its own. Every trial is added first (as Tune adds a grid's trials before starting
  them), then, as Tune's controller does with room for one trial at a time, the trial that
  `choose_trial_to_run` picks runs until the scheduler answers PAUSE or STOP or its curve ends; the
  scheduler's own `stop_trial` calls on other trials are carried out with Tune's rules (a paused or pending
  trial is removed with `on_trial_remove`, a running one completed with `on_trial_complete`).

A trial whose curve ends (its last epoch, or a diverged one's NaN) is not counted as stopped.
"""

from __future__ import annotations

import logging
from typing import Sequence

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from analysis.recorded_curves import TrialCurve

logging.getLogger("ray.tune.schedulers.hyperband").setLevel(logging.WARNING)  # "Bracket too small" per band
TIME_ATTR = "epoch"
Stops = dict[str, "int | None"]  # run_id -> the epoch the scheduler stopped it at, None when it ran to its end


def _result(curve: TrialCurve, index: int, metric: str) -> dict:
    epoch = curve.epochs[index]
    return {TIME_ATTR: epoch, "training_iteration": epoch, metric: curve.values[index]}


def _trial(curve: TrialCurve) -> Trial:
    return Trial("replay", stub=True, trial_id=curve.run_id)


def replay(scheduler: TrialScheduler, curves: Sequence[TrialCurve], metric: str) -> Stops:
    """Feed the curves to an asynchronous scheduler one trial at a time, in the order given."""
    stops: Stops = {}
    for curve in curves:
        trial = _trial(curve)
        scheduler.on_trial_add(None, trial)
        trial.set_status(Trial.RUNNING)
        stops[curve.run_id] = None
        result = {}
        for index in range(len(curve.epochs)):
            result = _result(curve, index, metric)
            if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                if index < len(curve.epochs) - 1:
                    stops[curve.run_id] = curve.epochs[index]
                break
        scheduler.on_trial_complete(None, trial, result)
        trial.set_status(Trial.TERMINATED)
    return stops


class _OneAtATime:
    """What a synchronous scheduler asks of Tune's controller: stopping a trial other than the one reporting."""

    def __init__(self, scheduler: TrialScheduler):
        self.scheduler = scheduler
        self.last_results: dict[str, dict] = {}

    def stop_trial(self, trial: Trial) -> None:  # TuneController.stop_trial's rules
        if trial.status in (Trial.ERROR, Trial.TERMINATED):
            return
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, self.last_results.get(trial.trial_id, {}))
        trial.set_status(Trial.TERMINATED)


def replay_synchronous(scheduler: TrialScheduler, curves: Sequence[TrialCurve], metric: str) -> Stops:
    """Feed the curves to a scheduler that pauses trials (HyperBand): all trials added first, then one runs at a
    time, the one the scheduler chooses, until it is paused, stopped or its curve ends."""
    controller = _OneAtATime(scheduler)
    trials = {curve.run_id: _trial(curve) for curve in curves}
    by_id = {curve.run_id: curve for curve in curves}
    done = {run_id: 0 for run_id in by_id}  # epochs fed so far
    for curve in curves:
        scheduler.on_trial_add(controller, trials[curve.run_id])
    while (trial := scheduler.choose_trial_to_run(controller)) is not None:
        curve = by_id[trial.trial_id]
        trial.set_status(Trial.RUNNING)
        decision = TrialScheduler.CONTINUE
        while decision == TrialScheduler.CONTINUE and done[curve.run_id] < len(curve.epochs):
            result = _result(curve, done[curve.run_id], metric)
            done[curve.run_id] += 1
            controller.last_results[trial.trial_id] = result
            decision = scheduler.on_trial_result(controller, trial, result)
        if decision == TrialScheduler.PAUSE:  # even at its curve's end: Tune sees that end when it resumes it
            trial.set_status(Trial.PAUSED)
        else:  # stopped by the scheduler, or its curve ended (Tune then stops it: on_trial_complete)
            controller.stop_trial(trial)
    stops: Stops = {}
    for run_id, curve in by_id.items():
        ran = done[run_id]
        stops[run_id] = curve.epochs[ran - 1] if 0 < ran < len(curve.epochs) else (None if ran else 0)
    return stops


__all__ = ["replay", "replay_synchronous", "Stops", "TIME_ATTR"]

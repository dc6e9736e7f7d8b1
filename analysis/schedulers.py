"""Predictive early stopping: Optimus's loss model fitted to each trial's curve, online (`--scheduler optimus`).

    python sweeps/depth_width.py --scheduler optimus      # any study whose trials report once per epoch

    >>> OptimusScheduler(metric="test/rmse", mode="min", time_attr="epoch", max_t=200)   # what the runner builds

`python -m analysis replay STUDY --scheduler optimus --margin 0.05,0.1,0.2` feeds a finished sweep's recorded
curves to it (analysis/replay.py).

For each trial the stopper keeps its (time, metric) points. Once the trial has `min_points` of them (default
max(4, 20% of max_t)) it fits l(k) = 1/(b0 k + b1) + b2, b >= 0 (`analysis.loss_curves.fit_loss_curve`) to the
curve and predicts the metric at `max_t`. The trial is stopped when that prediction is worse than the best value
any trial has measured so far (measured, never predicted) by more than `margin`, relative to that best:

    mode "min":  stop if predicted > best + margin * |best|
    mode "max":  stop if predicted < best - margin * |best|

The model only falls, so mode "min" fits the metric itself (a loss, an RMSE); mode "max" is for a metric in [0, 1]
such as an accuracy: it fits the error 1 - metric and converts the prediction back (a trial with a value outside [0,
1] is never judged). The margin (`DEFAULT_MARGIN`, 20%: the runner's `--stop-margin` default) absorbs what the fit
gets wrong when it extrapolates from the first fifth of a curve and the noise in the measured best: a trial is
stopped only when it is clearly out of the race, never for being a little behind. 0 stops anything predicted to be
worse; larger is safer. Measured (bench/stoppers.py, depth_width quick: 200 epochs, LR annealed to ~0): a
learning-rate schedule that decays to zero makes the tail fall faster than Eq. 1 extrapolates from the first 40
epochs (it predicted 124 test RMSE for a net that ended at 102), so at 5% the stopper cut the best network and the
sweep's best was 10% worse; at 20% it kept it and still trained 14% fewer epochs.

Left alone: a NaN/inf value (a diverged trial ends itself in the runner) and a failed fit (too few finite points,
or a non-finite prediction) mean continue. Each result costs one fit over that trial's points.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from analysis.loss_curves import fit_loss_curve


DEFAULT_MARGIN = 0.2  # relative to the best measured value; the runner's --stop-margin default


def default_min_points(max_t: float) -> int:
    """Points a trial must have before it is judged: max(4, 20% of max_t)."""
    return max(4, math.ceil(0.2 * max_t))


class OptimusScheduler(FIFOScheduler):
    """Runs trials first come first served (FIFO) and stops those whose fitted curve cannot reach the best."""

    # Like ASHA it judges every result; the runner sets Tune's result buffer to 1 for it (`_configure_tune`), so a
    # trial stops at the epoch it is judged. (Declaring `_supports_buffered_results = False` instead would make
    # Tune warn on every sweep, as the runner sets the buffer length either way.)

    def __init__(self, metric: str | None = None, mode: str | None = None, time_attr: str = "training_iteration",
                 max_t: float = 100, min_points: int | None = None, margin: float = DEFAULT_MARGIN):
        super().__init__()
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if max_t <= 0 or margin < 0:
            raise ValueError(f"max_t must be > 0 and margin >= 0, got max_t={max_t}, margin={margin}")
        self._metric, self._mode = metric, mode
        self._time_attr, self._max_t, self._margin = time_attr, max_t, margin
        self._min_points = default_min_points(max_t) if min_points is None else max(3, min_points)
        self._points: dict[str, tuple[list[float], list[float]]] = {}  # trial id -> (times, values)
        self.best: float | None = None  # best value measured by any trial so far
        self.stopped: dict[str, dict[str, float]] = {}  # trial id -> time, predicted, best at the stop

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune passes TuneConfig's metric and mode: accepted when they agree with the constructor's."""
        if (self._metric and metric and metric != self._metric) or (self._mode and mode and mode != self._mode):
            return False
        self._metric, self._mode = self._metric or metric, self._mode or mode
        return True

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError("OptimusScheduler needs a metric and a mode ('min' or 'max'): pass them to it or to "
                             "tune.TuneConfig")

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        time, value = result.get(self._time_attr), result.get(self._metric)
        if not _finite(time) or not _finite(value):
            return TrialScheduler.CONTINUE  # a missing or diverged value: the runner's divergence handling
        time, value = float(time), float(value)
        times, values = self._points.setdefault(trial.trial_id, ([], []))
        while times and times[-1] >= time:  # a trial restored from a checkpoint reports those epochs again
            times.pop()
            values.pop()
        times.append(time)
        values.append(value)
        if self.best is None or self._better(value, self.best):
            self.best = value
        if len(times) < self._min_points or time >= self._max_t:
            return TrialScheduler.CONTINUE
        predicted = self.predict(times, values)
        if predicted is None or not self._out_of_race(predicted, self.best):
            return TrialScheduler.CONTINUE
        self.stopped[trial.trial_id] = {"time": time, "predicted": predicted, "best": self.best}
        return TrialScheduler.STOP

    def predict(self, times: list[float], values: list[float]) -> float | None:
        """The metric the fitted curve reaches at max_t; None when it cannot be fitted (then: continue)."""
        if self._mode == "max":
            if any(v < 0 or v > 1 for v in values):
                return None  # not a metric in [0, 1]: 1 - metric is no error the model can fit
            values = [1 - v for v in values]
        try:
            fit = fit_loss_curve(times, values)
            predicted = float(fit.predict(self._max_t))
        except (ValueError, FloatingPointError):
            return None
        if not math.isfinite(predicted):
            return None
        return 1 - predicted if self._mode == "max" else predicted

    def _better(self, a: float, b: float) -> bool:
        return a < b if self._mode == "min" else a > b

    def _out_of_race(self, predicted: float, best: float) -> bool:
        slack = self._margin * abs(best)
        return predicted > best + slack if self._mode == "min" else predicted < best - slack

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._points.pop(trial.trial_id, None)  # its best stays in `best`

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._points.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._points.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return (f"Optimus early stopping on {self._metric} ({self._mode}, {self._margin:.0%} margin, "
                f"from {self._min_points} points): {len(self.stopped)} stopped")


def _finite(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

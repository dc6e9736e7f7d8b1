"""Gradient staleness in asynchronous SGD with a parameter server: learners of different speeds.

    >>> from trainables.studies.staleness import StalenessConfig, schedule, train_staleness
    >>> schedule((1, 2.5), 4)            # one row per gradient: learner, k, read/update times, staleness
    >>> from trainables.runtime.session import LocalSession
    >>> s = LocalSession(epochs=1); train_staleness({"ratio": 2.5}, None, s); s.history[-1]

Model (zero communication time): learner i has speed s_i (gradients per time unit). It reads (pulls) the
weights at t_read, computes for 1/s_i time units, pushes its gradient at t_update = t_read + 1/s_i, which
applies one weight update, and reads again at once. So learner i's k-th gradient (k = 0, 1, ...) is read at
k/s_i and applied at (k+1)/s_i. Gradients applied after the horizon are not counted.

The server serves one request at a time. At one instant, the learners whose gradients arrive then are served
in learner-index order, and serving learner i = apply its update, then hand it the weights for its next
gradient (push and pull together, atomically). At t = 0 every learner reads the initial weights.
Consequences: a read at time t sees its own update at t and those of lower-index learners at t, not those of
higher-index learners at t (they are applied after it).

Staleness of a gradient = the number of weight updates (by any other learner) applied between its read and its
own update in that serial order. With seq(i, k) the position of learner i's k-th update in the server's
order (0-based; sorted by time, then learner index), staleness(i, k) = seq(i, k) - seq(i, k - 1) - 1 with
seq(i, -1) = -1 (the read at t = 0 precedes every update). Equivalently: the updates in (t_read, t_update),
plus those at t_read by higher-index learners, plus those at t_update by lower-index learners.
Examples: one learner: always 0. Two learners of equal speed: learner 0's first gradient 0, every other 1
(n equal learners: n - 1 after the first round). In the long run learner i's mean staleness is
sum_{j != i} s_j / s_i (the others' updates during its 1/s_i of computing): speeds (1, r) give r and 1/r.

Times are exact: speeds are read as decimals (2.5 = 5/2, fractions.Fraction), and time is counted in integer
ticks of 1/D time units, D = the lcm of the speeds' numerators (periods 1/s_i = b_i/a_i become integers
b_i D / a_i), so simultaneous events are equal integers, never floats that differ in the last bit. The schedule
is built vectorized (numpy: every update time at once, one lexsort, per-learner differences).

Speeds: `speeds` if given, else `learners` speeds spaced evenly from 1 to `ratio` (2 learners: (1, ratio)).
Metrics: staleness/mean, staleness/max, learner<i>/staleness_mean, learner<i>/staleness_max,
learner<i>/expected_mean (sum_{j != i} s_j / s_i), learner<i>/gradients, speed_ratio (fastest / slowest),
gradients, time/tick (1/D). Artifacts: gradients.csv (every gradient: learner, k, read_time, update_time,
read_tick, update_tick, staleness) and staleness_counts.csv (learner, staleness, count).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from trainables.config import ConfigError

GRADIENTS_TABLE, COUNTS_TABLE = "gradients.csv", "staleness_counts.csv"
MAX_GRADIENTS = 5_000_000  # per trial: a table larger than this is a config mistake (artifacts ride through Ray)
MAX_TICKS = 2**53  # integer ticks stay exact as float64 too (the table's times)


@dataclass(frozen=True)
class StalenessConfig:
    ratio: float = 2.5  # speed of the fastest learner / the slowest (>= 1); used when `speeds` is empty
    learners: int = 2  # number of learners, speeds evenly spaced from 1 to `ratio`; used when `speeds` is empty
    speeds: tuple[float, ...] = ()  # explicit speeds (gradients per time unit), e.g. --set speeds=1,2.5
    horizon: float = 100.0  # time units simulated; gradients applied after it are not counted
    max_learners: int = 64  # guard: per-learner metrics are logged for each

    def __post_init__(self) -> None:
        if self.ratio < 1 or not math.isfinite(self.ratio):
            raise ConfigError(f"ratio={self.ratio} must be >= 1 (fastest / slowest learner speed)")
        if not 1 <= self.learners <= self.max_learners:
            raise ConfigError(f"learners={self.learners} must be between 1 and max_learners={self.max_learners}")
        if len(self.speeds) > self.max_learners:
            raise ConfigError(f"{len(self.speeds)} speeds is more than max_learners={self.max_learners}")
        if any(not (s > 0 and math.isfinite(s)) for s in self.speeds):
            raise ConfigError(f"speeds={self.speeds} must all be positive numbers (gradients per time unit)")
        if not (self.horizon > 0 and math.isfinite(self.horizon)):
            raise ConfigError(f"horizon={self.horizon} must be a positive number of time units")


def learner_speeds(cfg: StalenessConfig) -> tuple[Fraction, ...]:
    """Exact speeds: `speeds` as written (decimals), else `learners` evenly spaced from 1 to `ratio`
    (1 + (ratio - 1) i / (learners - 1), exact fractions: 8 learners up to 2.5 have period denominators of 14)."""
    if cfg.speeds:
        return tuple(_exact(s) for s in cfg.speeds)
    if cfg.learners == 1:
        return (Fraction(1),)
    ratio = _exact(cfg.ratio)
    return tuple(1 + (ratio - 1) * Fraction(i, cfg.learners - 1) for i in range(cfg.learners))


def _exact(x: float | str | Fraction) -> Fraction:
    """A speed as the decimal it is written as: 2.5 -> 5/2, 0.1 -> 1/10 (not the binary float)."""
    if isinstance(x, (Fraction, int)):
        return Fraction(x)
    return Fraction(x if isinstance(x, str) else repr(float(x)))


def ticks(speeds, horizon) -> tuple[np.ndarray, int, Fraction]:
    """Integer periods (ticks per gradient) of every learner, the horizon in ticks (floor), and the tick length."""
    exact = [_exact(s) for s in speeds]
    denom = math.lcm(*(s.numerator for s in exact))  # ticks per time unit: period b/a = (b * denom / a) ticks
    end = math.floor(_exact(horizon) * denom)
    periods = [s.denominator * denom // s.numerator for s in exact]
    if max(end, *periods) > MAX_TICKS:
        raise ConfigError(f"speeds {tuple(map(str, exact))} need {denom} ticks per time unit, too fine for "
                          f"horizon={horizon}; use speeds with fewer decimals or a shorter horizon")
    return np.array(periods, dtype=np.int64), end, Fraction(1, denom)


def schedule(speeds, horizon) -> pd.DataFrame:
    """Every gradient applied by the horizon, in the server's order: learner, k, read_tick, update_tick,
    read_time, update_time (time units), staleness (see the module docstring)."""
    periods, end, tick = ticks(speeds, horizon)
    counts = end // periods  # gradients of each learner applied by the horizon
    total = int(counts.sum())
    if total > MAX_GRADIENTS:
        raise ConfigError(f"speeds {tuple(speeds)} over horizon={horizon} make {total} gradients, over "
                          f"{MAX_GRADIENTS}; shorten the horizon")
    learner = np.repeat(np.arange(len(periods)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)  # 0, 1, .. within each learner
    update = (k + 1) * periods[learner]
    order = np.lexsort((learner, update))  # by time, ties in learner-index order
    seq = np.empty(total, dtype=np.int64)
    seq[order] = np.arange(total)
    # rows are grouped by learner with k ascending: the previous update of the same learner is the previous row
    previous = np.where(k == 0, -1, np.r_[-1, seq[:-1]])
    staleness = seq - previous - 1
    table = pd.DataFrame({"learner": learner, "k": k, "read_tick": update - periods[learner], "update_tick": update,
                          "staleness": staleness})
    table = table.iloc[order].reset_index(drop=True)
    table.insert(4, "read_time", table["read_tick"] * float(tick))
    table.insert(5, "update_time", table["update_tick"] * float(tick))
    return table


def expected_mean(speeds) -> list[float]:
    """Long-run mean staleness of each learner: sum_{j != i} s_j / s_i."""
    s = np.asarray(speeds, dtype=np.float64)
    return list((s.sum() - s) / s)


def train_staleness(cfg: StalenessConfig, data: Any, session, device: Any = None) -> None:
    speeds = learner_speeds(cfg)
    t0 = time.perf_counter()
    table = schedule(speeds, cfg.horizon)
    elapsed = time.perf_counter() - t0
    _, _, tick = ticks(speeds, cfg.horizon)
    metrics: dict[str, Any] = {
        "staleness/mean": float(table["staleness"].mean()) if len(table) else math.nan,
        "staleness/max": int(table["staleness"].max()) if len(table) else 0,
        "speed_ratio": float(max(speeds) / min(speeds)), "gradients": len(table), "time/tick": float(tick),
        "time/schedule_s": elapsed}
    per = table.groupby("learner")["staleness"]
    means, maxes, sizes = per.mean(), per.max(), per.size()
    for i, expected in enumerate(expected_mean(speeds)):
        metrics[f"learner{i}/speed"] = float(speeds[i])  # exact in the table's ticks; a float here
        metrics[f"learner{i}/gradients"] = int(sizes.get(i, 0))
        metrics[f"learner{i}/staleness_mean"] = float(means.get(i, math.nan))
        metrics[f"learner{i}/staleness_max"] = int(maxes.get(i, 0))
        metrics[f"learner{i}/expected_mean"] = expected
    counts = table.groupby(["learner", "staleness"]).size().rename("count").reset_index()
    session.report(metrics, 1, artifacts={GRADIENTS_TABLE: table, COUNTS_TABLE: counts})

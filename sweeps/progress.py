"""The sweep's progress on the console, at most 100 characters: trials done/running/pending of the total, the best
value so far with its trial's swept values, elapsed time and a rough ETA. On a terminal it is one line that
updates as trials end; otherwise (a log file, a pipe) one line when a trial ends, at most every 10 s, and the last
one, plus one a minute while no trial ends. `--verbose` shows Ray Tune's status tables instead.

      3/22 done  2 run 17 wait  best test/rmse 98.75 (widths=256-128-64)   1:12  ETA 4:10
"""

from __future__ import annotations

import math
import sys
import time

from ray import tune

WIDTH = 100
HEARTBEAT_S = 60.0
LOG_EVERY_S = 10.0  # the least time between two lines in a log


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class ProgressLines(tune.Callback):
    def __init__(self, total: int, metric: str, mode: str, name_of, stream=None):
        self.total, self.metric, self.mode = total, metric, mode
        self.name_of = name_of  # trial -> its swept values in short form
        self.stream = stream
        self._reset()

    def _reset(self) -> None:
        self.started = time.monotonic()
        self.last_line = self.started
        self.done = 0
        self.best: tuple[float, str] | None = None

    def __getstate__(self) -> dict:  # Tune pickles callbacks into its experiment state (for --resume)
        return {k: v for k, v in self.__dict__.items() if k != "stream"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, stream=None)
        self._reset()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(value):
            self.best = (float(value), self.name_of(trial))

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best[0] if self.mode == "min" else value > self.best[0]

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self._due(trials):
            self._line(trials, ending=trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self._line(trials, f"error: {self.name_of(trial)}", ending=trial)

    def on_experiment_end(self, trials, **info):
        if self._tty() and self.last_line > self.started:
            print(file=self._out(), flush=True)  # end the updating line

    def _due(self, trials) -> bool:
        last = self.done >= max(self.total, len(trials))
        return self._tty() or last or time.monotonic() - self.last_line >= LOG_EVERY_S

    def _out(self):
        return self.stream or sys.stdout

    def _tty(self) -> bool:
        return bool(getattr(self._out(), "isatty", lambda: False)())

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.last_line > HEARTBEAT_S:
            self._line(trials)

    def _line(self, trials, note: str = "", ending=None) -> None:
        running = sum(1 for t in trials if t.status == "RUNNING" and t is not ending)
        total = max(self.total, len(trials))
        waiting = max(total - self.done - running, 0)
        elapsed = time.monotonic() - self.started
        eta = f"ETA {clock(elapsed / self.done * (total - self.done))}" if 0 < self.done < total else ""
        head = f"{self.done:>4}/{total} done {running:>2} run {waiting:>3} wait"
        tail = f"{clock(elapsed):>7}  {eta}".rstrip()
        best = note or (f"best {self.metric} {self.best[0]:.4g} ({self.best[1]})" if self.best else "")
        room = WIDTH - len(head) - len(tail) - 4
        if len(best) > room:
            best = best[: max(room - 1, 0)] + "…"
        line = f"{head}  {best:<{room}}  {tail}".rstrip()
        if self._tty():
            print(f"\r{line:<{WIDTH}}", end="", file=self._out(), flush=True)
        else:
            print(line, file=self._out(), flush=True)
        self.last_line = time.monotonic()

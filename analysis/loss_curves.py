"""Optimus's training-loss model (Peng et al., EuroSys 2018, Eq. 1): l(k) = 1 / (b0 * k + b1) + b2, b >= 0.

    >>> fit = fit_loss_curve(epochs, losses)          # LossFit(b0, b1, b2, rmse, r2, n)
    >>> fit.predict([100, 200])                       # the fitted curve at later steps
    >>> fit.steps_to(0.3)                             # the first k where the curve reaches 0.3 (inf if never)

k is the step or epoch the losses were recorded at (k >= 1). The fit minimizes squared residuals with
b0, b1, b2 >= 0 (scipy.optimize.least_squares, trust-region reflective with bounds). As in the authors'
estimator, later points weigh more: the residual at position i of n is weighted by sqrt((i + 1) / n), since
what the model is for is the curve's tail. The start point comes from the data: b2 from just below the
last losses, b1 from the first, b0 from the decay between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares


@dataclass(frozen=True)
class LossFit:
    b0: float
    b1: float
    b2: float
    rmse: float  # unweighted root-mean-square residual over the fitted points
    r2: float  # unweighted coefficient of determination over the fitted points (nan for a flat curve)
    n: int  # points fitted

    def predict(self, k: Sequence[float] | float) -> np.ndarray:
        return loss_model(np.asarray(k, dtype=float), self.b0, self.b1, self.b2)

    def steps_to(self, loss: float) -> float:
        """The smallest k (real-valued) at which the fitted curve is at or below `loss`: inf when the curve's
        floor b2 is not below it (or it never falls), 0 when it starts below it."""
        if loss <= self.b2 or self.b0 <= 0:
            return 0.0 if self.b1 > 0 and 1 / self.b1 + self.b2 <= loss else math.inf
        return max(0.0, (1 / (loss - self.b2) - self.b1) / self.b0)


def loss_model(k: np.ndarray, b0: float, b1: float, b2: float) -> np.ndarray:
    """Eq. 1 at steps k; b0 = b1 = 0 would be an infinite loss, so the denominator is floored at 1e-12."""
    return 1.0 / np.maximum(b0 * k + b1, 1e-12) + b2


def fit_loss_curve(k: Sequence[float], loss: Sequence[float]) -> LossFit:
    """Fit Eq. 1 to (k, loss) points (NaN/inf points dropped); ValueError with fewer than 3 finite points."""
    k, loss = np.asarray(k, dtype=float), np.asarray(loss, dtype=float)
    keep = np.isfinite(k) & np.isfinite(loss)
    k, loss = k[keep], loss[keep]
    if len(k) < 3:
        raise ValueError(f"fitting l(k) = 1/(b0 k + b1) + b2 needs at least 3 finite points, got {len(k)}")
    order = np.argsort(k)
    k, loss = k[order], loss[order]
    weights = np.sqrt(np.arange(1, len(k) + 1) / len(k))
    b2 = max(0.0, float(loss.min()) * 0.9)
    first, last = max(loss[0] - b2, 1e-6), max(loss[-1] - b2, 1e-6)
    b1 = 1 / first
    b0 = max((1 / last - b1) / max(k[-1] - k[0], 1e-9), 1e-9)
    start = np.array([b0, b1, b2])

    def residuals(b: np.ndarray) -> np.ndarray:
        return weights * (loss_model(k, *b) - loss)

    result = least_squares(residuals, start, bounds=(0.0, np.inf), method="trf", x_scale="jac", max_nfev=2000)
    b0, b1, b2 = (float(v) for v in result.x)
    fitted = loss_model(k, b0, b1, b2)
    ss_res = float(((fitted - loss) ** 2).sum())
    ss_tot = float(((loss - loss.mean()) ** 2).sum())
    return LossFit(b0, b1, b2, rmse=math.sqrt(ss_res / len(k)), r2=1 - ss_res / ss_tot if ss_tot > 0 else math.nan,
                   n=len(k))

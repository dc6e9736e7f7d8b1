"""Per-trial artifacts: files and arrays a trial hands to its own MLflow child run.

    session.report(metrics, epoch, state_fn, artifacts={"replicas.csv": table,        # a DataFrame
                                                        "hist/layer3.npy": counts,   # an array or tensor
                                                        "fit.json": {"b0": 0.1}})    # JSON-able values

A trial never touches MLflow: its session encodes each artifact to bytes (by the name's
extension) and ships them with the report; the driver's recorder writes them to the trial's
child run once (an epoch replayed after a restore is not written again). The analysis layer
reads them back with `decode` (analysis.records.trial_artifact), so figures can be drawn from
the artifacts alone.

Formats, by extension: `.npy` (numpy arrays and torch tensors), `.csv` (pandas DataFrames),
`.json` (dicts, lists, numbers), `.txt` (str), anything else: bytes as given.
"""

from __future__ import annotations

import io
import json
from typing import Any

ARTIFACTS_KEY = "artifacts"  # the result key that carries a report's encoded artifacts
# A report's metrics may carry {PARAMS_KEY: {name: str}}: values known only inside the trial (e.g. the device's
# name, "GPU type"), which the driver's recorder logs as MLflow params of the trial's run (sweeps/recording.py).
PARAMS_KEY = "run_params"
MAX_BYTES = 16 * 2**20  # per report: artifacts ride with the result through Ray; larger data belongs in storage


def encode(name: str, value: Any) -> bytes:
    """The bytes of one artifact, in the format its name's extension says."""
    if name.endswith(".npy"):
        import numpy as np

        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        return buffer.getvalue()
    if name.endswith(".csv"):
        return value.to_csv(index=False).encode()
    if name.endswith(".json"):
        return json.dumps(value, indent=1, default=float).encode()
    if name.endswith(".txt"):
        return str(value).encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"artifact {name!r}: give bytes, or name it .npy, .csv, .json or .txt")


def encode_all(artifacts: dict[str, Any]) -> dict[str, bytes]:
    encoded = {name: encode(name, value) for name, value in artifacts.items()}
    size = sum(len(b) for b in encoded.values())
    if size > MAX_BYTES:
        raise ValueError(f"artifacts of one report total {size / 2**20:.1f} MiB, over {MAX_BYTES / 2**20:.0f} MiB; "
                         f"report summaries (histograms, quantiles) rather than raw data")
    return encoded


def decode(name: str, data: bytes) -> Any:
    """The value of an artifact's bytes: an ndarray, DataFrame, JSON value, str or bytes."""
    if name.endswith(".npy"):
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if name.endswith(".csv"):
        import pandas as pd

        return pd.read_csv(io.BytesIO(data))
    if name.endswith(".json"):
        return json.loads(data)
    if name.endswith(".txt"):
        return data.decode()
    return data

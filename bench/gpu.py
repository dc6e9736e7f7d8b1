"""GPU benchmark of issue #26: captured steps, trials sharing a GPU (with and without MPS), peaks, in one table.

    PYTHONPATH=. python bench/gpu.py                 # one GPU with torch (no Ray needed): about 4-5 minutes on an H200
    PYTHONPATH=. python bench/gpu.py --smoke         # the CPU, tiny sizes, capture emulated: that it runs (~1 min)
    PYTHONPATH=. python bench/gpu.py --only check,depth_width --json out.json

Every section runs in its own process under its own time limit (a CUDA error in one cannot poison the next; a
section that fails or runs out of time prints why and the others run), the output goes to stdout as it comes,
and one table is printed last (also written as JSON with --json). What each section times, through the
project's own code:

- check: captured vs eager training gives the same losses to float tolerance: depth_width (the trial,
  256-128-64, cosine schedule: the lr in a device tensor, and re-captured per epoch), dying_relu (1000 nets,
  the trial), the image trial (LeNet-5 population with dropout; ResNet-20, bf16, with augmentation), each as the
  max relative difference of train/loss over the epochs, next to two eager runs' own difference (cuDNN and
  cuBLAS need not be bitwise deterministic); and whether a captured dropout layer and a captured
  batch augmentation draw bit for bit what the eager ones draw from the same generator state.
- depth_width: ms per epoch (`time/epoch_s`, the trial's training time; median of the epochs after the first)
  of the trial `train_regression` for nets 16, 128-128, 256-128-64 (100k points, batch 1000), eager vs
  captured, and for 256-128-64 the two lr modes (device tensor vs re-capture when the cosine lr changes).
- packing: N = 1, 4, 8, 16 processes, each running the trial `train_regression` (2000-epoch cosine schedule,
  captured; evaluation and reporting included) on its own network, without and with the MPS daemon
  (trainables.runtime.mps.start_mps), plus 8 eager processes without MPS (today's setup); the networks are
  N evenly spaced by cost among the paper preset's 143. Aggregate network-epochs/s over a common window after
  every process has finished its first epoch (capture); projected paper preset = 143 x 2000 / that rate.
- resnet44: images/s of the image loop's step (trainables.training.classify: bf16 autocast, channels_last,
  SGD, normalize-only input) at batch 64 and 512, `train_one_epoch` vs `CapturedEpochs`, with TFLOP/s and PPP.
- batch_augment: bench/batch_augment.py at M = 1 and 8 (4096 images per epoch, 8 DataLoader workers):
  the project's pipeline eager and captured against the torchvision DataLoader.
- resnet50: bench/gpu_resnet50.py at 224 px and 28 px (fp32 and bf16 + channels_last), TFLOP/s and PPP.
- dying_relu: the trial's 1000 networks (30 epochs) fused, eager vs captured: seconds for the whole run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = ("check", "depth_width", "packing", "resnet44", "batch_augment", "resnet50", "dying_relu")
LIMITS_S = {"check": 70, "depth_width": 50, "packing": 160, "resnet44": 45, "batch_augment": 70, "resnet50": 50,
            "dying_relu": 35}  # per section, full mode (expected in all: 4-5 minutes on an H200)
RESULT_PATH: list[str] = []  # the running section's result file (packing writes what it has after each run)
SMOKE_LIMIT_S = 180
PAPER_NETS, PAPER_EPOCHS = 143, 2000
DW_NETS = ((16,), (128, 128), (256, 128, 64))


def log(*parts) -> None:
    print(*parts, flush=True)


# --- helpers used inside a section's process -------------------------------------------------------------

def _setup(smoke: bool):
    import torch

    device = torch.device("cpu") if smoke else torch.device("cuda", 0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch, device


def _capture_context(device):
    import contextlib

    from trainables.training.capture import emulate_on_cpu

    return emulate_on_cpu() if device.type != "cuda" else contextlib.nullcontext()


def _history(run, cfg, data, device):
    from trainables.runtime.session import LocalSession

    session = LocalSession(epochs=cfg.epochs)
    with _capture_context(device):
        run(cfg, data, session, device)
    return session.history


def _max_rel(a: list[float], b: list[float]) -> float:
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) != len(a) or len(a) != len(b):
        return math.inf
    return max(abs(x - y) / max(abs(x), 1e-30) for x, y in pairs)


def _losses(history, key="train/loss") -> list[float]:
    return [h[key] for h in history]


# --- sections -----------------------------------------------------------------------------------------------

def section_check(smoke: bool) -> dict:
    torch, device = _setup(smoke)
    from dataclasses import replace

    from trainables.studies.depth_width.config import RegressionConfig
    from trainables.studies.depth_width.trial import make_data, train_regression
    from trainables.studies.dying_relu.config import DyingReluConfig
    from trainables.studies.dying_relu.trial import make_data as dr_data, train_dying_relu
    from trainables.training import capture
    out = {}

    cfg = RegressionConfig(widths=(256, 128, 64), epochs=3 if smoke else 5, n_points=2500 if smoke else 20_000)
    data = make_data(cfg)
    eager = _losses(_history(train_regression, replace(cfg, capture="off"), data, device))
    eager2 = _losses(_history(train_regression, replace(cfg, capture="off"), data, device))
    for mode in ("tensor", "recapture"):
        capture.SCHEDULED_LR_MODE = mode
        got = _losses(_history(train_regression, replace(cfg, capture="on"), data, device))
        out[f"depth_width cosine, lr {mode}"] = {"max_rel": _max_rel(eager, got),
                                                  "eager_vs_eager": _max_rel(eager, eager2)}
    capture.SCHEDULED_LR_MODE = "tensor"

    cfg = DyingReluConfig(simulations=50 if smoke else 1000, epochs=2 if smoke else 3, n_points=500 if smoke else 3000)
    data = dr_data(cfg)
    h_e = _history(train_dying_relu, replace(cfg, capture="off"), data, device)
    h_c = _history(train_dying_relu, replace(cfg, capture="on"), data, device)
    out["dying_relu 1000 nets"] = {"max_rel": _max_rel(_losses(h_e), _losses(h_c)),
                                   "collapsed": [h_e[-1]["collapse/count"], h_c[-1]["collapse/count"]]}

    from trainables.image.config import ClassifyConfig
    from trainables.image.trial import make_data as im_data, train_classifier
    image_cases = {
        "image: LeNet-5 x4 population, dropout, cosine": dict(
            dataset="digits", model="lenet5", seeds=4, dropout_input=0.1, dropout_hidden=0.3, lr_policy="cosine",
            epochs=2, batch_size=64, train_subset=300 if smoke else 0),
        "image: ResNet-20, crop+flip+cutout, constant lr": dict(
            dataset="digits", model="resnet20", crop_flip=True, cutout=8, epochs=2, batch_size=64,
            train_subset=200 if smoke else 0),
    }
    for name, kw in image_cases.items():
        cfg = ClassifyConfig(**kw)
        data = im_data(cfg)
        a = _losses(_history(train_classifier, replace(cfg, capture="off"), data, device))
        b = _losses(_history(train_classifier, replace(cfg, capture="off"), data, device))
        c = _losses(_history(train_classifier, replace(cfg, capture="on"), data, device))
        out[name] = {"max_rel": _max_rel(a, c), "eager_vs_eager": _max_rel(a, b)}
    if device.type == "cuda":
        out["same random draws"] = _same_draws(torch, device)
    return out


def _same_draws(torch, device) -> dict:
    """Do a captured dropout layer (each replica its own generator) and a captured batch augmentation draw bit for bit
    what the eager ones draw from the same generator states? Three calls each."""
    from trainables.training.augment import batch_augment
    from trainables.training.population import STACKED, FusedDropout

    gens = [torch.Generator(device).manual_seed(s) for s in range(4)]
    layer = FusedDropout(0.5, gens, STACKED).train()
    x = torch.ones(4, 256, 64, device=device)
    aug_gen = torch.Generator(device).manual_seed(7)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.zeros(64, dtype=torch.long, device=device)

    def draw():
        return layer(x), batch_augment(images, labels, 2, aug_gen, mean=(0.5,) * 3, std=(0.25,) * 3, cutout=8)[0]

    states = [g.get_state() for g in (*gens, aug_gen)]
    eager = [[t.clone() for t in draw()] for _ in range(3)]
    for g, s in zip((*gens, aug_gen), states):
        g.set_state(s)
    graph = torch.cuda.CUDAGraph()
    for g in (*gens, aug_gen):
        graph.register_generator_state(g)
    with torch.cuda.graph(graph):
        static = draw()
    captured = []
    for _ in range(3):
        graph.replay()
        captured.append([t.clone() for t in static])
    return {"dropout_masks_equal": all(torch.equal(e[0], c[0]) for e, c in zip(eager, captured)),
            "augmentation_equal": all(torch.equal(e[1], c[1]) for e, c in zip(eager, captured))}


def section_depth_width(smoke: bool) -> dict:
    torch, device = _setup(smoke)
    from dataclasses import replace

    from trainables.studies.depth_width.config import RegressionConfig
    from trainables.studies.depth_width.trial import make_data, train_regression
    from trainables.training import capture
    out = {}
    epochs = 3 if smoke else 6
    for widths in DW_NETS:
        cfg = RegressionConfig(widths=widths, epochs=epochs, n_points=3000 if smoke else 100_000, batch_size=1000)
        data = make_data(cfg)
        row = {}
        for switch in ("off", "on"):
            history = _history(train_regression, replace(cfg, capture=switch), data, device)
            row["eager" if switch == "off" else "captured"] = 1e3 * statistics.median(
                h["time/epoch_s"] for h in history[1:])
            row[f"first_epoch_ms_{switch}"] = 1e3 * history[0]["time/epoch_s"]
            if "perf/tflops" in history[-1]:
                row[f"tflops_{switch}"] = history[-1]["perf/tflops"]
                row[f"ppp_{switch}"] = history[-1].get("perf/ppp")
        out["-".join(map(str, widths))] = row
    cfg = RegressionConfig(widths=DW_NETS[-1], epochs=epochs, n_points=3000 if smoke else 100_000, capture="on")
    data = make_data(cfg)
    for mode in ("tensor", "recapture"):
        capture.SCHEDULED_LR_MODE = mode
        history = _history(train_regression, cfg, data, device)
        out[f"lr_{mode}_ms"] = 1e3 * statistics.median(h["time/epoch_s"] for h in history[1:])
    capture.SCHEDULED_LR_MODE = "tensor"
    return out


def section_resnet44(smoke: bool) -> dict:
    torch, device = _setup(smoke)
    import functools

    from trainables.data.vision import TensorSplit
    from trainables.models.paleo import achieved_flops
    from trainables.models.registry import build_model
    from trainables.models.stats import model_summary
    from trainables.image.trial import device_peak
    from trainables.training.augment import eval_transform
    from trainables.training.classify import CapturedEpochs, train_one_epoch

    amp = channels_last = device.type == "cuda"
    macs = model_summary("resnet44", (3, 32, 32), num_classes=10, in_channels=3)["macs_per_sample"]
    peak = device_peak(device, amp)
    transform = functools.partial(eval_transform, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    augment = lambda x, y, generator=None: (transform(x), y)  # noqa: E731  (the trial's no-augmentation input)
    out = {}
    for batch, steps in (((4, 2), (8, 2)) if smoke else ((64, 60), (512, 24))):
        n = batch * steps
        g = torch.Generator(device=device).manual_seed(0)
        data = TensorSplit(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device, generator=g),
                           torch.randint(0, 10, (n,), device=device, generator=g))
        row = {}
        for mode in ("eager", "captured"):
            torch.manual_seed(0)
            model = build_model("resnet44", num_classes=10, in_channels=3).to(device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
            with _capture_context(device):
                if mode == "eager":
                    run = lambda: train_one_epoch(model, opt, data, batch, g, augment=augment, amp=amp,  # noqa: E731
                                                  channels_last=channels_last)
                else:
                    epochs = CapturedEpochs(model, opt, data, batch, g, augment, amp=amp, channels_last=channels_last,
                                            constant_lr=True)
                    run = lambda: epochs.epoch(g)  # noqa: E731
                run()  # warm-up (cuDNN's algorithm choice)
                rates = []
                for _ in range(1 if smoke else 3):
                    stats = run()  # ends with a host sync
                    rates.append(stats["samples"] / stats["seconds"])
            row[mode] = statistics.median(rates)
        row["tflops_captured"] = achieved_flops(macs, row["captured"]) / 1e12
        row["ppp_captured"] = row["tflops_captured"] * 1e12 / peak if peak else None
        out[str(batch)] = row
    return out


def section_dying_relu(smoke: bool) -> dict:
    torch, device = _setup(smoke)
    from dataclasses import replace

    from trainables.studies.dying_relu.config import DyingReluConfig
    from trainables.studies.dying_relu.trial import make_data, train_dying_relu

    cfg = DyingReluConfig(simulations=50, epochs=3, n_points=500) if smoke else DyingReluConfig()
    data = make_data(cfg)
    out = {}
    for switch in ("off", "on"):
        _history(train_dying_relu, replace(cfg, capture=switch, epochs=2), data, device)  # warm-up run
        history = _history(train_dying_relu, replace(cfg, capture=switch), data, device)
        key = "eager" if switch == "off" else "captured"
        out[key] = history[-1]["time/train_s"]
        out[f"{key}_epoch_ms"] = 1e3 * statistics.median(h["time/epoch_s"] for h in history[1:])
        out[f"{key}_collapsed"] = history[-1]["collapse/count"]
    return out


def section_packing(smoke: bool) -> dict:
    """Parent of the packing runs: starts N child processes per configuration (`--pack-child`)."""
    from trainables.runtime.mps import start_mps
    from trainables.studies.depth_width.config import enumerate_networks

    nets = sorted(enumerate_networks(), key=_net_macs)
    runs = [(2, False, "on"), (1, False, "on")] if smoke else (
        [(8, False, "off")] + [(n, False, "on") for n in (1, 4, 8, 16)] + [(n, True, "on") for n in (1, 4, 8, 16)])
    window = 3.0 if smoke else 5.0
    out = {}
    mps = None
    try:
        for n, with_mps, switch in runs:
            if with_mps and mps is None:
                mps = start_mps(say=log)
                if mps is None:
                    out["mps"] = "not started (see the line above)"
                    break
            picks = [nets[min(len(nets) - 1, round((i + 0.5) * len(nets) / n - 0.5))] for i in range(n)]
            key = f"{n} procs, {'MPS' if with_mps else 'no MPS'}, {'captured' if switch == 'on' else 'eager'}"
            out[key] = _pack(picks, switch, window, smoke)
            log(f"packing {key}: {json.dumps(out[key])}")
            if RESULT_PATH:  # what is measured survives the section's time limit
                Path(RESULT_PATH[0]).write_text(json.dumps(out))
    finally:
        if mps is not None:
            mps.stop(say=log)
    return out


def _net_macs(widths) -> int:
    sizes = (2, *widths, 1)
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def _pack(picks, switch: str, window: float, smoke: bool) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        procs = []
        for i, widths in enumerate(picks):
            cmd = [sys.executable, __file__, "--pack-child", folder, str(i), "-".join(map(str, widths)), switch,
                   str(window)] + (["--smoke"] if smoke else [])
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.time() + 120
        while len(list(Path(folder).glob("ready-*"))) < len(picks) and time.time() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.05)
        (Path(folder) / "go.tmp").write_text(str(time.time() + 0.5))
        os.replace(Path(folder) / "go.tmp", Path(folder) / "go")
        results = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=window + 120)
            if p.returncode != 0:
                raise RuntimeError(f"packing child failed: {stderr[-1500:]}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    start = max(r["times"][0] for r in results)  # every process past its first epoch (the capture)
    end = min(r["times"][-1] for r in results)
    count = sum(sum(start < t <= end for t in r["times"]) for r in results)
    overlap = end > start and count > 0
    if overlap:
        rate = count / (end - start)
    else:  # the processes' steady epochs did not overlap (a slow start): the sum of each one's own rate
        rate = sum((len(r["times"]) - 1) / (r["times"][-1] - r["times"][0]) for r in results if len(r["times"]) > 1)
    return {"net_epochs_per_s": rate, "paper_preset_min": PAPER_NETS * PAPER_EPOCHS / rate / 60 if rate else math.nan,
            "window_s": end - start, "overlapping": overlap,
            "per_process_epoch_ms": statistics.median(r["epoch_ms"] for r in results)}


def pack_child(folder: str, index: str, widths: str, switch: str, window: float, smoke: bool) -> None:
    """One packed trial: the depth_width trial on its network, from the shared start time until `window` s later."""
    torch, device = _setup(smoke)
    from trainables.runtime.session import LocalSession
    from trainables.studies.depth_width.config import RegressionConfig
    from trainables.studies.depth_width.trial import make_data, train_regression

    cfg = RegressionConfig(widths=tuple(int(w) for w in widths.split("-")), epochs=PAPER_EPOCHS, capture=switch,
                           n_points=3000 if smoke else 100_000)
    data = make_data(cfg)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # the CUDA context (with MPS: the daemon's client) before the start
    Path(folder, f"ready-{index}").write_text("")
    while not Path(folder, "go").exists():
        time.sleep(0.01)
    go = float(Path(folder, "go").read_text())
    time.sleep(max(0.0, go - time.time()))
    stop_at = go + window
    times: list[float] = []

    class Until(LocalSession):  # the trial's own loop; stopped at the window's end (as ASHA stops a trial)
        def report(self, metrics, epoch, state_fn=None, artifacts=None):
            times.append(time.time())
            return super().report(metrics, epoch, None, artifacts) and time.time() < stop_at

    session = Until(epochs=cfg.epochs)
    with _capture_context(device):
        train_regression(cfg, data, session, device)
    epoch_ms = 1e3 * statistics.median([h["time/epoch_s"] for h in session.history[1:]] or [0.0])
    print(json.dumps({"times": times, "epoch_ms": epoch_ms}), flush=True)


def section_batch_augment(smoke: bool) -> dict:
    args = (["--device", "cpu", "--images", "64", "--repeats", "1", "--workers", "0", "--capture", "on", "--ms", "1,2"]
            if smoke
            else ["--device", "cuda", "--images", "4096", "--repeats", "2", "--workers", "8"])
    text = _run_script("batch_augment.py", args)
    out: dict = {}
    for m, pipeline, rate in re.findall(r"^\s*(\d+)\s{2}(\S.*?)\s{2,}([\d.]+)\s+[\d.]+\s+\S+$", text, re.M):
        out.setdefault(m, {})[pipeline.strip()] = float(rate)
    return out


def section_resnet50(smoke: bool) -> dict:
    runs = {"28": ["--size", "28", "--batch", "256", "--steps", "30", "--repeats", "2"],
            "224": ["--size", "224", "--batch", "256", "--steps", "10", "--repeats", "2"]}
    if smoke:
        runs = {"28": ["--device", "cpu", "--size", "28", "--batch", "2", "--steps", "1", "--repeats", "1"]}
    out: dict = {}
    for size, args in runs.items():
        text = _run_script("gpu_resnet50.py", args)
        for line in text.splitlines():
            m = re.match(r"\s+(fp32, NCHW \(baseline\)|bf16 AMP \+ channels_last)\s+(\d+)\s+\S+\s+([\d.]+)\s+(\S+)",
                         line)
            if m:
                out.setdefault(size, {})[m.group(1)] = {"img_s": float(m.group(2)), "tflops": float(m.group(3)),
                                                        "ppp": None if m.group(4) == "n/a" else float(m.group(4))}
    return out


def _run_script(name: str, args: list[str]) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    log(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-1500:]}")
    return proc.stdout


RUNNERS = {"check": section_check, "depth_width": section_depth_width, "packing": section_packing,
           "resnet44": section_resnet44, "batch_augment": section_batch_augment, "resnet50": section_resnet50,
           "dying_relu": section_dying_relu}


# --- the parent: run the sections, print the table ------------------------------------------------------------

def run_section(name: str, smoke: bool) -> dict:
    """Run one section in its own process group under its time limit; its results (or its error)."""
    import signal

    limit = SMOKE_LIMIT_S if smoke else LIMITS_S[name]
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        cmd = [sys.executable, __file__, "--section", name, "--result", result.name] + (["--smoke"] if smoke else [])
        started = time.perf_counter()
        log(f"=== {name} (limit {limit} s)")
        proc = subprocess.Popen(cmd, stdout=sys.stdout, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the section and the processes it started (packing's trials)
            proc.communicate()
            partial = json.loads(Path(result.name).read_text() or "{}")
            kept = " (partial results kept)" if partial else ""
            return {**partial, "error": f"ran past its {limit} s limit{kept}"}
        finally:
            if name == "packing":
                _quit_our_mps()
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            tail = (stderr or "").strip().splitlines()
            log("\n".join(tail[-15:]))
            return {"error": tail[-1] if tail else f"exit status {proc.returncode}"}
        return {**json.loads(Path(result.name).read_text() or "{}"), "section_s": seconds}


def _quit_our_mps() -> None:
    """A packing section killed at its limit leaves the MPS daemon it started: stop it, so the sections after it
    run as without MPS."""
    from trainables.runtime import mps

    pipe, log_dir = mps.default_dirs()
    import shutil

    running = shutil.which(mps.CONTROL) and mps._control("get_server_list", {mps.PIPE_ENV: pipe}) is not None
    if os.path.isdir(pipe) and running:
        mps._control("quit", {mps.PIPE_ENV: pipe, mps.LOG_ENV: log_dir})
        log(f"MPS: stopped the daemon the packing section left at {pipe}")


def _f(value, fmt="{:.1f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def table(results: dict, header: str) -> list[str]:
    rows: list[tuple[str, str, str, str, str]] = []

    def add(section, what, eager="", captured="", note=""):
        rows.append((section, what, eager, captured, note))

    for name, res in results.items():
        if "error" in res:
            add(name, "FAILED", "", "", res["error"][:90])
    dw = results.get("depth_width", {})
    for net in ("-".join(map(str, w)) for w in DW_NETS):
        if net in dw:
            r = dw[net]
            add("depth_width", f"net {net}: ms per epoch (100k pts, B 1000)", _f(r["eager"]), _f(r["captured"]),
                f"{r['eager'] / r['captured']:.1f}x; PPP {_f(r.get('ppp_on'), '{:.4f}')} captured")
    if "lr_tensor_ms" in dw:
        add("depth_width", "256-128-64 cosine: lr in a device tensor vs re-capture", "", _f(dw["lr_tensor_ms"]),
            f"re-capture per epoch: {_f(dw['lr_recapture_ms'])} ms per epoch")
    best = None
    for key, r in results.get("packing", {}).items():
        if key in ("section_s", "error"):
            continue
        if isinstance(r, dict):
            add("packing", f"{key}: net-epochs/s", "", _f(r["net_epochs_per_s"]),
                f"paper preset {_f(r['paper_preset_min'])} min on one GPU")
            if "captured" in key and (best is None or r["paper_preset_min"] < best[1]["paper_preset_min"]):
                best = (key, r)
        else:
            add("packing", key, "", "", str(r))
    for batch, r in results.get("resnet44", {}).items():
        if isinstance(r, dict):
            add("resnet44", f"img/s at batch {batch} (bf16, channels_last)", _f(r["eager"], "{:.0f}"),
                _f(r["captured"], "{:.0f}"), f"{r['captured'] / r['eager']:.1f}x; {_f(r['tflops_captured'])} TFLOP/s, "
                                             f"PPP {_f(r['ppp_captured'], '{:.3f}')}")
    ba = {m: r for m, r in results.get("batch_augment", {}).items() if isinstance(r, dict)}
    for m, r in ba.items():
        loader = next((v for k, v in r.items() if k.startswith("DataLoader")), None)
        eager, captured = r.get("project (in-memory, batched)"), r.get("project, captured step")
        ratio = captured / loader if captured and loader else None
        add("batch_augment", f"M={m}: img/s, project vs DataLoader {_f(loader, '{:.0f}')}", _f(eager, "{:.0f}"),
            _f(captured, "{:.0f}"), f"captured/DataLoader {_f(ratio, '{:.2f}')}x")
    for size, variants in results.get("resnet50", {}).items():
        if isinstance(variants, dict):
            for variant, r in variants.items():
                add("resnet50", f"{size} px, {variant}: img/s", _f(r["img_s"], "{:.0f}"), "",
                    f"{_f(r['tflops'])} TFLOP/s, PPP {_f(r['ppp'], '{:.3f}')}")
    dr = results.get("dying_relu", {})
    if "eager" in dr:
        add("dying_relu", "1000 nets, 30 epochs fused: s (training)", _f(dr["eager"], "{:.2f}"),
            _f(dr["captured"], "{:.2f}"), f"{dr['eager'] / dr['captured']:.1f}x; collapsed "
                                          f"{dr['eager_collapsed']} / {dr['captured_collapsed']}")
    for what, r in results.get("check", {}).items():
        if what == "same random draws":
            add("check", "captured draws == eager draws (same generator state)", "", "",
                f"dropout masks {r['dropout_masks_equal']}, augmentation {r['augmentation_equal']}")
        elif isinstance(r, dict):
            add("check", f"{what}: max rel diff of train/loss", _f(r.get("eager_vs_eager"), "{:.1e}"),
                _f(r["max_rel"], "{:.1e}"), "eager column: two eager runs" if "eager_vs_eager" in r else
                f"collapsed {r.get('collapsed')}")
    widths = [max(len(r[i]) for r in rows + [("section", "what", "eager", "captured", "")]) for i in range(4)]
    lines = [header, "  ".join(h.ljust(w) for h, w in zip(("section", "what", "eager", "captured"), widths)) + "  note"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    # The targets, where measured
    done = []
    if best:
        done.append(f"depth_width paper preset <= 15 min on one GPU: {best[1]['paper_preset_min']:.1f} min ({best[0]})")
    r44 = results.get("resnet44", {}).get("64")
    if isinstance(r44, dict):
        done.append(f"ResNet-44 >= 15,000 img/s at batch 64: {r44['captured']:.0f} img/s captured")
    if ba:
        ratios = []
        for m, r in ba.items():
            loader = next((v for k, v in r.items() if k.startswith("DataLoader")), None)
            if loader and "project, captured step" in r:
                ratios.append(f"M={m} {r['project, captured step'] / loader:.2f}x")
        done.append("batch augmentation >= DataLoader at every M: " + ", ".join(ratios))
    if done:
        lines.append("targets: " + "; ".join(done))
    lines.append("section seconds: " + ", ".join(f"{name} {_f(res.get('section_s'), '{:.0f}')}"
                                                   for name, res in results.items()))
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (capture emulated, no MPS)")
    p.add_argument("--only", default="", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--json", default="", help="also write every number to this file")
    p.add_argument("--section", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--pack-child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pack_child:
        folder, index, widths, switch, window = args.pack_child
        pack_child(folder, index, widths, switch, float(window), args.smoke)
        return
    if args.section:
        RESULT_PATH.append(args.result)
        result = RUNNERS[args.section](args.smoke)
        Path(args.result).write_text(json.dumps(result, default=str))
        return
    import torch

    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device visible; run with --smoke for the CPU check")
    sections = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"error: unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    name = torch.cuda.get_device_name(0) if not args.smoke else f"cpu ({torch.get_num_threads()} threads), smoke"
    header = (f"bench/gpu.py on {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}"
              f"{' (numbers meaningless: --smoke)' if args.smoke else ''}")
    log(header)
    started = time.perf_counter()
    results = {s: run_section(s, args.smoke) for s in sections}
    lines = table(results, header + f"; {time.perf_counter() - started:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "results": results}, indent=1, default=str))
    print("\n" + "\n".join(lines), flush=True)


if __name__ == "__main__":
    main()

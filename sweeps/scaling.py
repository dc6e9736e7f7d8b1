"""Strong and weak scaling of data-parallel training, and all-reduce variants (every trial a DDP job).

    python sweeps/scaling.py                    # quick: ResNet-20, 2048 images, N in {1, 2}, CPU (Gloo), minutes
    python sweeps/scaling.py --preset paper --address auto --gpus-per-worker 1 --cpus-per-worker 8
    python sweeps/scaling.py --set gpu_hour_price=2.5   # price the GPU-hours yourself

Paper: ResNet-50 on FashionMNIST (1 channel in, 10 classes), 10 epochs, N in {1, 2, 4, 8, 16}
workers; strong scaling splits a global batch of 256 over N, weak scaling gives each worker 64
(10 jobs); the all-reduce comparison runs DDP communication hooks (fp16, bf16, PowerSGD; the
default all-reduce is the weak job) for N in {1, 2, 4, 8} on one node, and the NCCL and Gloo
backends with the workers spread over nodes for N in {2, 4, 8}. A variant the machine cannot run
(NCCL without GPUs) is recorded as skipped and marked in the figure and summary.
Smoke and quick run on a CPU: N in {1, 2}, LeNet-5 (smoke) or ResNet-20 (quick) instead of
ResNet-50, a few hundred / two thousand images. Figures: throughput, training time (and iteration
time per worker), cost and efficiency vs learners, and the all-reduce comparison
(analysis/studies/scaling.py, which also defines the metrics).
"""

from analysis.studies import scaling as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.image.trial import make_data
from trainables.scaling import ScalingConfig, ddp_overrides, derived_params, train_scaling


def scaling_jobs(workers: list[int]) -> list[str]:
    return [f"{mode}-{n}" for mode in ("strong", "weak") for n in workers]


PAPER_JOBS = (scaling_jobs([1, 2, 4, 8, 16])
              + [f"hook-{h}-{n}" for h in ("fp16", "bf16", "powersgd") for n in (1, 2, 4, 8)]
              + [f"backend-{b}-{n}" for b in ("nccl", "gloo") for n in (2, 4, 8)])

STUDY = Study(
    name="scaling",
    description=__doc__.split("\n")[0],
    config_cls=ScalingConfig,
    trial_fn=train_scaling,
    data_parallel=True,
    make_data=make_data,
    presets={
        # strong-1 doubles as weak-1 here (global batch = batch per worker), saving a ~20 s DDP start
        "smoke": Preset("LeNet-5, 256 images, 2 epochs; strong 1-2, weak 2, PowerSGD hook, NCCL (skipped on CPU) "
                        "(about 2 min on 2 CPUs)",
                        config={"model": "lenet5", "train_subset": 256, "test_subset": 128, "epochs": 2,
                                "global_batch": 32, "worker_batch": 32, "lr": 0.4},
                        space={"job": ["strong-1", "strong-2", "weak-2", "hook-powersgd-2", "backend-nccl-2"]}),
        "quick": Preset("ResNet-20, 2048 images, 3 epochs; strong and weak 1-2, every hook and backend at 2 "
                        "(minutes on a 2-core CPU)",
                        config={"model": "resnet20", "train_subset": 2048, "test_subset": 512, "epochs": 3,
                                "global_batch": 128, "worker_batch": 64, "lr": 0.2},
                        space={"job": scaling_jobs([1, 2]) + [f"hook-{h}-2" for h in ("fp16", "bf16", "powersgd")]
                               + ["backend-nccl-2", "backend-gloo-2"]}),
        "paper": Preset("ResNet-50, FashionMNIST, 10 epochs; N in 1..16: 10 scaling jobs + 18 all-reduce variants "
                        "(a GPU cluster)",
                        # Goyal et al.'s linear scaling rule comes with a gradual warm-up (global batch up to 1024)
                        config={"model": "resnet50", "epochs": 10, "global_batch": 256, "worker_batch": 64,
                                "lr": 0.1, "warmup_epochs": 1},
                        space={"job": PAPER_JOBS}),
    },
    metric="perf/steady_images_per_s",
    mode="max",
    figures=figures.figures,
    summary=figures.summary,
    derived_params=derived_params,
    ddp_overrides=ddp_overrides,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))

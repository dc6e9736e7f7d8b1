"""Optimus (Peng et al., EuroSys 2018) on CIFAR ResNets: loss-curve models, their regression on depth, time to 92%.

    python sweeps/optimus.py --preset smoke            # about a minute (tests: a fake CIFAR-10)
    python sweeps/optimus.py                           # quick: 2k/1k CIFAR-10 images, 8 epochs (~6 min, 2 CPUs)
    python sweeps/optimus.py --preset paper    # a GPU per trial, all of CIFAR-10, 350 epochs (GPUs)
    python sweeps/optimus.py --preset fit              # the analysis step: fits from the store, no training
    python -m analysis optimus                         # the same figures from the latest sweep's records

Data collection: CIFAR ResNets of depth 18, 20, 32, 44 and 56 and the validation target, depth 50, all of
one family (trainables/models/cifar_resnet.py: 16/32/64 channels, basic blocks, option A shortcuts; depth 18 is
blocks 3-3-2, depth 50 is 6n+2 with n = 8), CIFAR-10, batch 128, SGD momentum 0.9, lr 0.1 cosine-annealed
after 2 epochs of linear warm-up, weight decay 1e-4, crop + flip. Every trial records its training loss per
epoch and its device as the run param "GPU type" (torch.cuda.get_device_name, or "cpu"); sweeps run on
different machines into one store are analysed together.

The `fit` step (analysis/studies/optimus.py) reads the latest data-collection sweep and every earlier one of the
same preset (the latest run per model and device), fits Eq. 1 to each run, regresses the coefficients on
depth and device, predicts depth 50, maps loss to accuracy, and applies the speed model Eq. 4
(`speed_t`, `speed_batch`); its numbers and tables are recorded on its own parent run.
"""

from dataclasses import dataclass

from sweeps.runner import main
from sweeps.study import Analysis, Context, Hooks, Preset, Study, image_trial
from trainables.config import to_dict
from trainables.image.config import ClassifyConfig, plain_trial

DEPTH_MODELS = ["cifar_resnet18", "resnet20", "resnet32", "resnet44", "resnet56", "cifar_resnet50"]


@dataclass(frozen=True)
class OptimusConfig(ClassifyConfig):
    # --- the trials: the image trial's recipe for CIFAR-10 ResNets (units as in ClassifyConfig)
    dataset: str = "cifar10"
    model: str = "resnet20"
    crop_flip: bool = True
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_policy: str = "cosine"  # smooth, so Eq. 1 (a smooth decay) describes the whole curve; no step drops
    # linear warm-up from lr/10 over the first 2 epochs: at lr 0.1 from the first step the depth-44..56 nets blew
    # up on small data (loss 6-8 in epoch 1, then stuck at chance; quick preset on digits)
    warmup_epochs: int = 2
    epochs: int = 350
    # --- the fit step (analysis/studies/optimus.py, whose constants document them); trials ignore these
    target_model: str = "cifar_resnet50"  # predicted from the other depths, compared with its real runs
    accuracy_goal: float = 0.92  # test accuracy whose epochs (and time, Eq. 4) are predicted
    speed_t: tuple[float, ...] = (0.0045, 0.397, 0.543, 0.0, 0.0)  # Eq. 4's t0..t4 (s): the documented stand-in (REFERENCES.md)
    speed_batch: int = 32  # M, the global batch (samples per step) of those coefficients
    speed_trace: str = ""  # a CSV of measured (p, w, steps_per_s) at batch speed_batch: fit t0..t4 to it instead
    speed_ps: tuple[int, ...] = (2, 4)  # parameter servers p: one curve each
    max_workers: int = 32  # workers w from 1 to this
    paleo: bool = True  # also the PALEO/FLOPs table (VGG16, GoogLeNet, ResNet-50 at 224x224; ~10 s on a CPU)


def analyze(base: OptimusConfig, context: Context) -> Analysis:
    from analysis.studies.optimus import fit_step

    values, artifacts, source = fit_step(to_dict(base), context.tracking_uri, context.from_run)
    return Analysis(values=values, artifacts=artifacts, source_run=source)


DEPTHS = {"model": DEPTH_MODELS}

STUDY = Study(
    name="optimus",
    doc=__doc__,
    config=OptimusConfig,
    trial=image_trial(plain_trial),  # the fit step's keys are read by the analysis, not by the trials
    presets={
        "smoke": Preset("6 depths, at most 256/128 images, 5 epochs of batch 32 at lr 0.02 (about a minute; "
                        "tests: fake CIFAR-10)",
                        config={"train_subset": 256, "test_subset": 128, "epochs": 5, "batch_size": 32, "lr": 0.02},
                        space=DEPTHS, num_samples=6),
        "quick": Preset("6 depths, 2k training / 1k test CIFAR-10 images, 8 epochs (~6 min on 2 CPUs)",
                        config={"train_subset": 2000, "test_subset": 1000, "epochs": 8}, space=DEPTHS,
                        num_samples=6),
        "paper": Preset("6 depths, all of CIFAR-10, 350 epochs (a GPU each; run it on each device type into one store)",
                        gpus_per_trial=1,
                        config={"epochs": 350}, space=DEPTHS, num_samples=6),
        "fit": Preset("the analysis step: Eq. 1 fits, regression on depth and device, depth-50 prediction, "
                      "epochs and time to accuracy_goal (trains nothing)", analysis_only=True),
    },
    hooks=Hooks(analyze=analyze, reads="optimus (the data-collection sweep the fit step reads)"),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))

"""Transfer learning: fine-tune every layer of an ImageNet-pretrained ResNet, or train only a new final layer on it?

    python sweeps/transfer.py                         # quick: ResNet-18, 64 px, Flowers102, 8 epochs (~7 min on 2 CPUs)
    python sweeps/transfer.py --preset paper     # 2 trials per GPU, ResNet-50, 224 px, 200 epochs
    python sweeps/transfer.py --set dataset=dtd       # another Visual Decathlon domain (dtd, fgvc_aircraft)
    python sweeps/transfer.py --set cache_features=true   # feature extractor: backbone features computed once
    python -m analysis transfer                       # redraw the figures and summary from MLflow

Seven trials (trainables/studies/transfer/trial.py): fine-tuning all layers at lr 0.001, 0.01 and 0.1, and the fixed
feature extractor (backbone frozen, only a new final layer trained) at lr 1, 0.1, 0.01 and 0.001; SGD with
momentum 0.9, batch 64, lr x0.1 after 30%, 60% and 90% of the epochs. The target is a Visual Decathlon domain
read by torchvision's own classes (Flowers102 by default). Weights: torchvision's (fetched once, the
machine needs internet or the file: `python -m trainables.models.pretrained resnet50`) or `--set weights_path=FILE`.
Trials are selected on the validation split (`val/accuracy`); the figures report the test accuracy at each
trial's best validation epoch. The sweep's parent run also records a summary of the data set (classes,
images per class, split sizes, sample images). Seeds (`--set seeds=N`) are separate trials: a ResNet is no
small model to fuse into a population. Figures: analysis/studies/transfer.py.
"""

from sweeps.runner import main
from sweeps.study import Context, Hooks, Preset, Study, Trial
from trainables.studies.transfer.config import TransferConfig

TRIAL = "trainables.studies.transfer.trial"
FINETUNE_LRS = (0.001, 0.01, 0.1)
FEATURE_EXTRACTOR_LRS = (1.0, 0.1, 0.01, 0.001)
POINTS = (tuple({"mode": "finetune", "lr": lr} for lr in FINETUNE_LRS)
          + tuple({"mode": "feature_extractor", "lr": lr} for lr in FEATURE_EXTRACTOR_LRS))


def check_weights(base: TransferConfig, context: Context) -> TransferConfig:
    """Before anything starts: the pretrained weights are on disk (or downloadable) and fit the network;
    otherwise a one-line error names the file and how to fetch it (exit 2)."""
    from trainables.models.pretrained import load_pretrained

    load_pretrained(base.arch, base.weights, base.weights_path)
    return base


def describe_data(data) -> dict:
    from trainables.data.vision import dataset_summary

    return dataset_summary(data.images)


STUDY = Study(
    name="transfer",
    doc=__doc__,
    config=TransferConfig,
    trial=Trial(run=f"{TRIAL}:train_transfer", data=f"{TRIAL}:make_data", params=f"{TRIAL}:transfer_params"),
    presets={
        "smoke": Preset("ResNet-18 at 32 px, each mode at one lr, 3 epochs (seconds; tests: fake Flowers102/DTD)",
                        config={"arch": "resnet18", "image_size": 32, "load_size": 36, "epochs": 3, "batch_size": 16},
                        points=({"mode": "finetune", "lr": 0.01}, {"mode": "feature_extractor", "lr": 0.1})),
        "quick": Preset("ResNet-18 at 64 px (Decathlon's 72 px images), 7 trials, 8 epochs, 1,000 test images "
                        "(~7 min on 2 CPUs)",
                        config={"arch": "resnet18", "image_size": 64, "load_size": 72, "epochs": 8,
                                "test_subset": 1000},
                        points=POINTS, asha_grace_period=3),
        "paper": Preset("ResNet-50 at 224 px, 7 trials, 200 epochs, the full splits (2 trials per GPU)",
                        gpus_per_trial=0.5,
                        config={"arch": "resnet50", "image_size": 224, "load_size": 256, "epochs": 200},
                        points=POINTS, asha_grace_period=60),
    },
    hooks=Hooks(prepare=check_weights, describe_data=describe_data),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))

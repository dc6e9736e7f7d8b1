"""ImageNet-pretrained backbones for transfer learning: torchvision's weights API, or a state dict on disk.

    >>> state = load_pretrained("resnet50", "IMAGENET1K_V1")              # torchvision's file, fetched once
    >>> state = load_pretrained("resnet50", weights_path="r50.pth")       # any saved ResNet-50 state dict
    >>> model = build_transfer_model("resnet50", state, num_classes=102, frozen=True)

Weights come through torchvision's own API (`ResNet50_Weights.IMAGENET1K_V1.get_state_dict`), which keeps
the file in `$TORCH_HOME/hub/checkpoints/` and checks its hash. Trials starting together share one download
through a file lock beside the file. Without internet and without the file, `WeightsUnavailableError` says in
one line which file is expected where and how to fetch it:

    python -m trainables.models.pretrained resnet50 --weights IMAGENET1K_V1      # on a machine with internet

`build_transfer_model` loads the backbone, replaces the final layer with a new one for the target's classes
and, `frozen`, turns the rest into a fixed feature extractor: no gradients, batch norm in eval mode (its
running statistics stay ImageNet's), the forward pass through it under `torch.no_grad`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import filelock
import torch
import torchvision
from torch import nn

from trainables.config import ConfigError, InputError

# arch -> (constructor, torchvision weights enum); each arch's final layer is `fc`.
ARCHS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights),
    "resnet101": (torchvision.models.resnet101, torchvision.models.ResNet101_Weights),
}
# The ImageNet normalization every one of these weights was trained with (their transforms() say so).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(InputError, RuntimeError):
    """Pretrained weights are neither on disk nor downloadable (the runner exits with code 2)."""


def weights_entry(arch: str, weights: str):
    """The torchvision weights enum member, e.g. ResNet50_Weights.IMAGENET1K_V1 (ConfigError if unknown)."""
    if arch not in ARCHS:
        raise ConfigError(f"arch={arch!r} is not one of {', '.join(ARCHS)}")
    enum = ARCHS[arch][1]
    if weights not in enum.__members__:
        raise ConfigError(f"weights={weights!r} is not one of {arch}'s: {', '.join(enum.__members__)}")
    return enum[weights]


def weights_file(arch: str, weights: str) -> Path:
    """Where torchvision's weights API keeps the file ($TORCH_HOME/hub/checkpoints/<name from the URL>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_entry(arch, weights).url).name


def fetch_weights(arch: str, weights: str) -> Path:
    """The weights file, downloaded by torchvision (hash checked) if it is not there yet; one download for
    trials that ask at once (file lock). Raises WeightsUnavailableError (one line) when it cannot be had."""
    entry, path = weights_entry(arch, weights), weights_file(arch, weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path) + ".lock"):
        if not path.is_file():
            try:
                entry.get_state_dict(progress=False, check_hash=True)  # downloads to a temp file, then moves it
            except Exception as e:  # noqa: BLE001  (no network, HTTP error, bad hash: all end the same way)
                detail = " ".join(str(e).split())[:160]
                raise WeightsUnavailableError(
                    f"pretrained weights {arch} {weights}: {path} is missing and the download failed "
                    f"({type(e).__name__}: {detail}); run `python -m trainables.models.pretrained {arch} --weights {weights}` "
                    f"where there is internet and copy the file there, or pass --set weights_path=FILE "
                    f"(a saved {arch} state dict)") from None
    return path


def load_pretrained(arch: str, weights: str = "IMAGENET1K_V1", weights_path: str = "") -> dict[str, torch.Tensor]:
    """The backbone's state dict (on the CPU): from `weights_path` if given, else torchvision's `weights`.
    It must fit `arch` apart from its final layer `fc` (which the transfer model replaces)."""
    path = Path(weights_path).expanduser() if weights_path else fetch_weights(arch, weights)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights_path={weights_path}: no such file; give a saved {arch} state dict "
                                      f"(torch.save(model.state_dict(), FILE)) or leave it empty for {weights}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (not a torch file, truncated, pickled objects)
        raise WeightsUnavailableError(f"cannot read {path} as a state dict ({type(e).__name__}); give a file "
                                      f"written by torch.save(model.state_dict(), FILE)") from None
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path} holds a {type(state).__name__}, not a state dict; save "
                                      f"model.state_dict() instead of the model")
    _check_fits(arch, state, path)
    return state


def _backbone_keys(state: dict) -> set[str]:
    return {k for k in state if not k.startswith("fc.")}


def _check_fits(arch: str, state: dict, path: Path) -> None:
    expected = ARCHS[arch][0](weights=None).state_dict()
    missing = sorted(_backbone_keys(expected) - set(state))
    shapes = sorted(k for k in _backbone_keys(expected) & set(state) if state[k].shape != expected[k].shape)
    if missing or shapes:
        bad = (f"{len(missing)} missing tensors (e.g. {missing[0]})" if missing
               else f"{len(shapes)} tensors of other shapes (e.g. {shapes[0]})")
        raise WeightsUnavailableError(f"{path} is not a {arch} state dict: {bad}; set arch= to the network it "
                                      f"was saved from")


class TransferModel(nn.Module):
    """A pretrained backbone (its final layer removed: it outputs features) and a new linear head.

    frozen=True: a fixed feature extractor. The backbone's parameters take no gradients, it stays in eval mode
    whatever `train()` says (batch norm keeps ImageNet's statistics) and runs under `torch.no_grad`."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, frozen: bool):
        super().__init__()
        self.backbone, self.head, self.frozen = backbone, head, frozen
        if frozen:
            backbone.requires_grad_(False)
            backbone.eval()

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_transfer_model(arch: str, state: dict[str, torch.Tensor], num_classes: int, frozen: bool) -> TransferModel:
    """`arch` with the pretrained backbone of `state` and a new final layer for `num_classes` (PyTorch's default
    initialization of nn.Linear)."""
    model = ARCHS[arch][0](weights=None)
    head = nn.Linear(model.fc.in_features, num_classes)
    model.fc = nn.Identity()
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    return TransferModel(model, head, frozen)


def backbone_change(model: TransferModel, state: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between the backbone's tensors (parameters and batch-norm statistics)
    and the pretrained ones: 0 for a frozen feature extractor after any amount of training."""
    current = model.backbone.state_dict()
    return max((current[k].float().cpu() - v.float()).abs().max().item()
               for k, v in state.items() if k in current and v.is_floating_point())


def main() -> None:
    parser = argparse.ArgumentParser(description="Fetch pretrained weights through torchvision's weights API "
                                                 "(into $TORCH_HOME/hub/checkpoints) and print where they are.")
    parser.add_argument("arch", choices=list(ARCHS))
    parser.add_argument("--weights", default="IMAGENET1K_V1")
    args = parser.parse_args()
    try:
        path = fetch_weights(args.arch, args.weights)
    except (WeightsUnavailableError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{args.arch} {args.weights}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()

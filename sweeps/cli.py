"""The command line every study shares: `python sweeps/<study>.py [options] [--set KEY=VALUE ...]`.

    args = parse_args(STUDY, argv)      # exits 2 with one line on bad flags; --help prints and exits 0

Parsing imports neither Ray, torch nor MLflow (a study's declaration and config modules are light), so `--help`
answers in well under a second. The help lists only the options the study takes, two example commands from the
study script's docstring, the presets, and every config key `--set` accepts with its default, its format and the
comment its config class gives it. An option the study does not take (e.g. `--workers` for a study whose trials do
not train data-parallel) is refused with one line saying why.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import sys
import tokenize
import typing
from typing import Any, NoReturn, Sequence

from sweeps.study import Study

SEARCHES = ("grid", "optuna", "random")
SCHEDULERS = ("fifo", "asha", "optimus")


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def fail(message: str) -> NoReturn:
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + error; we print one line
        fail(f"{message} (see --help)")


def parse_args(study: Study, argv: Sequence[str]) -> argparse.Namespace:
    """The flags of one sweep; an option the study does not take, given anyway, is a UsageError."""
    parser, refused = build_parser(study)
    args = parser.parse_args(list(argv))
    for dest, reason in refused.items():
        if getattr(args, dest) != parser.get_default(dest):
            raise UsageError(reason)
    if args.gpus_per_trial is None:  # the preset's share of a GPU (paper presets: how many trials fill one)
        args.gpus_per_trial = study.presets[args.preset].gpus_per_trial
    return args


def build_parser(study: Study) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser, and the options it hides from --help because the study does not take them (dest -> why)."""
    p = _Parser(prog=f"python sweeps/{study.name}.py", description=_description(study),
                usage="%(prog)s [options] [--set KEY=VALUE ...]",
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=config_help(study))
    refused: dict[str, str] = {}

    def option(*flags: str, why_not: str | None = None, **kw: Any) -> None:
        action = p.add_argument(*flags, **{**kw, **({"help": argparse.SUPPRESS} if why_not else {})})
        if why_not:
            refused[action.dest] = why_not

    option("--preset", default=study.default_preset, choices=list(study.presets),
           help=f"scale of the study (default {study.default_preset}; see presets above)")
    option("--search", default=study.default_search, choices=SEARCHES,
           help=f"grid: every point of the preset's space; optuna: Ray Tune's OptunaSearch (TPE); random: random "
                f"sampling (default {study.default_search})")
    option("--num-samples", type=int, default=None, help="trials for --search optuna/random (default: the preset's)")
    _scheduler_options(study, option)
    _resource_options(study, option)
    option("--address", default=None, help="Ray cluster to join: 'auto', HOST:PORT or ray://...; default: RAY_ADDRESS, "
                                            "else a local Ray")
    option("--storage", default=None, help="where Ray Tune keeps experiment state and checkpoints: a folder or "
                                           "s3://bucket/prefix (default RESULTS_DIR/ray)")
    has_data_dir = "data_dir" in {f.name for f in dataclasses.fields(study.config)}
    option("--data-dir", default=None, why_not=None if has_data_dir else
           f"--data-dir: {study.name} reads no data set from disk; drop --data-dir",
           help="where data sets are read (and downloaded to): default $DLSWEEPS_DATA_DIR, else ~/.cache/dlsweeps/data")
    option("--results-dir", default="results", help="figures, tables and the default MLflow store (default ./results)")
    option("--seed", type=int, default=0, help="seed of the trials and of the search algorithm (default 0)")
    reads = study.hooks.reads
    option("--from-run", default=None, metavar="RUN_ID",
           why_not=None if reads else f"--from-run: {study.name} reads no earlier sweep; drop --from-run",
           help=f"the {reads} sweep (its parent run ID) this study reads (default: the latest one in the store)")
    option("--resume", action="store_true", help="continue the latest interrupted sweep of this study")
    option("--retry-errored", action="store_true", help="with --resume: run errored trials again")
    option("--max-failures", type=int, default=2, help="retries of a trial whose process died (default 2)")
    option("--verbose", action="store_true", help="Ray Tune's status tables instead of one progress line per trial")
    option("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
           help="override one config value (repeatable; the keys below); a swept key is then fixed")
    return p, refused


def _scheduler_options(study: Study, option) -> None:
    one_shot = (f"{study.name}'s trials report once (one-shot): there is nothing for a scheduler to stop; "
                f"use --scheduler fifo" if study.one_shot else None)
    option("--scheduler", default=study.default_scheduler, choices=SCHEDULERS,
           help=f"fifo: run every trial to the end; asha: ASHA early stopping with the epoch as time; optimus: stop a "
                f"trial once its fitted loss curve predicts a final value more than --stop-margin worse than the best "
                f"so far (default {study.default_scheduler})")
    option("--stop-margin", type=float, default=None, metavar="FRACTION", why_not=one_shot,
           help="with --scheduler optimus: how much worse than the best so far (relative) a trial's predicted final "
                "value may be before it is stopped (default 0.2; larger stops fewer trials)")
    times = study.trial.asha_times
    option("--asha-time", default="epoch", choices=["epoch", *times],
           why_not=None if times else f"--asha-time: {study.name}'s trials report no cumulative count besides the "
                                      f"epoch; drop --asha-time",
           help="with --scheduler asha: the time ASHA's rungs count, epochs or one of the study's cumulative counts "
                f"({', '.join(f'{k}: {v[0]}' for k, v in times.items())}); default epoch")
    option("--checkpoint-every", type=int, default=10, why_not=one_shot and "--checkpoint-every: " + one_shot,
           help="checkpoint a trial every N epochs and at its last (default 10; 0 = never)")


def _resource_options(study: Study, option) -> None:
    trial = study.trial
    option("--population", default="auto", choices=["auto", "on", "off"],
           why_not=None if trial.population else f"--population: {study.name}'s models do not train as populations; "
                                                 f"drop --population",
           help="with --set seeds=N (and the study's population axes"
                f"{': ' + ', '.join(trial.population_axes) if trial.population_axes else ''}): train them fused as one "
                "population trial (on), as separate trials (off), or fused where that is faster (auto: trials with a "
                f"GPU{', or any trial of this study: its models are tiny' if trial.population_on_cpu else ''})")
    option("--max-concurrent", type=int, default=None, help="at most this many trials at once")
    option("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    shares = ", ".join(f"{name} {preset.gpus_per_trial:g}" for name, preset in study.presets.items()
                       if preset.gpus_per_trial)
    option("--gpus-per-trial", type=float, default=None,
           help="GPUs per trial, fractions allowed: 0.25 packs 4 trials on a GPU (default: the preset's; "
                f"{shares or 'every preset: 0'}{'; else 0' if shares else ''}); 0 trains on CPUs")
    option("--instance-type", default="", help="prices the device-hours: an instance type of trainables/prices.py "
                                               "(default: cluster.yaml's worker type, else p3.2xlarge / c6i.xlarge)")
    option("--device-hour-price", type=float, default=0.0, metavar="USD",
           help="USD per GPU-hour (or per CPU-core-hour where trials hold no GPU); overrides --instance-type")
    no_ddp = (f"{study.name}'s trials do not train data-parallel (the image-classification studies do); drop "
              f"--workers and its options")
    option("--workers", type=int, default=None,
           why_not=None if trial.data_parallel else (
               f"--workers: {study.name} sets each trial's workers itself (its jobs); drop --workers"
               if trial.ddp else "--workers: " + no_ddp),
           help="run each trial as a Ray Train DDP job of N workers (default: one process per trial)")
    why = None if study.ddp_jobs else no_ddp
    option("--cpus-per-worker", type=float, default=1.0, why_not=why, help="CPUs per DDP worker (default 1)")
    option("--gpus-per-worker", type=float, default=0.0, why_not=why, help="GPUs per DDP worker (default 0)")
    option("--ddp-backend", default="auto", choices=["auto", "gloo", "nccl"], why_not=why,
           help="DDP process-group backend; auto: nccl with GPUs, gloo without (default auto)")


def _description(study: Study) -> str:
    examples = "\n".join(f"  {line}" for line in study.examples[:2])
    presets = "\n".join(f"  {name}{' (default)' if name == study.default_preset else ''}: {p.description}"
                        for name, p in study.presets.items())
    return f"{study.question}\n\nexamples:\n{examples}\n\npresets:\n{presets}"


# ---------------------------------------------------------------- the config keys

def config_help(study: Study) -> str:
    """Every config key with its default, its format and its comment in the config class, one line each."""
    comments = field_comments(study.config)
    hints = typing.get_type_hints(study.config)
    preset = study.presets[study.default_preset]
    rows = []
    for f in dataclasses.fields(study.config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = comments.get(f.name, "")
        if f.name in preset.space:
            text = f"({study.default_preset}: swept) {text}"
        elif f.name in preset.config and preset.config[f.name] != default:
            text = f"({study.default_preset}: {_shown(preset.config[f.name])}) {text}"
        rows.append((f"{f.name}={_shown(default)}", value_format(hints[f.name]), text.strip()))
    width = min(max(len(r[0]) for r in rows), 34)
    lines = [f"  {key:<{width}}  {text}{'  [' + fmt.split(', e.g.')[0] + ']' if fmt and 'e.g.' in text else ''}"
             f"{'  [' + fmt + ']' if fmt and 'e.g.' not in text else ''}".rstrip() for key, fmt, text in rows]
    return ("config keys (--set KEY=VALUE; seeds=N trains each config with N replicate seeds), with their defaults "
            f"(and the {study.default_preset} preset's value where it differs):\n" + "\n".join(lines))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ("-" if value and all(isinstance(v, int) for v in value) else ",").join(map(str, value)) or "''"
    return "''" if value == "" else str(value)


def value_format(annotation: Any) -> str:
    """How a value of this type is written on the command line (empty for plain strings and numbers)."""
    if annotation is bool:
        return "true|false"
    if typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        return ("integers joined by '-', e.g. 64-32" if item is int else
                "numbers joined by ',', e.g. 0.3,0.6" if item is float else "names joined by ',', e.g. a,b")
    return ""


def field_comments(cls: type) -> dict[str, str]:
    """field -> the comment written beside it in its class (and the comment lines right below it), for `cls` and
    its dataclass bases; the nearest class's comment wins."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comments.update(_class_comments(source))
    return comments


def _class_comments(source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    field, line_of_field = None, -1
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] != line_of_field:
            field, line_of_field = tok.string, tok.start[0]
        elif tok.type == tokenize.COMMENT and field:
            text = tok.string.lstrip("#").strip()
            same_line = tok.start[0] == line_of_field
            if same_line or (tok.start[0] == line_of_field + 1 and tok.string.startswith("#  ")):
                out[field] = (out.get(field, "") + " " + text).strip()
                line_of_field = tok.start[0]  # a continuation may follow
            else:
                field = None
    return out

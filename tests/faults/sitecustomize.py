"""Fault injection for the tests, in every Python process started with tests/faults on PYTHONPATH (Ray's
workers inherit the driver's environment). Inert unless one of these is set:

- `DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT=EPOCH:MARKER_FILE`: the first Tune trial to checkpoint at or after EPOCH
  kills its own process (os._exit: no cleanup, like an OOM kill); the marker file makes it happen once;
- `DLSWEEPS_DDP_FAULT=raise|exit:EPOCH:RANK:MARKER`: DDP rank RANK raises (or exits) right after reporting epoch
  EPOCH, once (it creates MARKER; an existing MARKER disarms it).

The faults hook into the observers production code offers (trainables.runtime.session.CHECKPOINT_OBSERVERS,
trainables.runtime.ddp.REPORT_OBSERVERS) when those modules are first imported, so a process that never trains
imports nothing more.
"""

import importlib.abc
import importlib.util
import os
import sys
import time

HOOKS = {}  # module name -> function(module) run right after the module is imported


def _kill_after_checkpoint(epoch: int) -> None:
    at, _, marker = os.environ["DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT"].partition(":")
    if epoch < int(at):
        return
    try:
        open(marker, "x").close()
    except FileExistsError:
        return
    time.sleep(3)  # let the driver fetch the checkpoint's result first, so the retry starts from it
    os._exit(1)


def _ddp_fault(epoch: int, rank: int) -> None:
    mode, at_epoch, at_rank, marker = os.environ["DLSWEEPS_DDP_FAULT"].split(":", 3)
    if int(at_epoch) != epoch or int(at_rank) != rank or os.path.exists(marker):
        return
    open(marker, "w").close()
    # Let the controller collect this epoch's reports (and register its checkpoint) first: its polls are
    # seconds apart, and epochs of a test model are milliseconds, so dying at once can beat every poll.
    time.sleep(3)
    if mode == "exit":
        os._exit(1)  # the process dies as if killed
    raise RuntimeError(f"injected fault after epoch {epoch} on rank {rank} (DLSWEEPS_DDP_FAULT)")


if os.environ.get("DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT"):
    HOOKS["trainables.runtime.session"] = lambda m: m.CHECKPOINT_OBSERVERS.append(_kill_after_checkpoint)
if os.environ.get("DLSWEEPS_DDP_FAULT"):
    HOOKS["trainables.runtime.ddp"] = lambda m: m.REPORT_OBSERVERS.append(_ddp_fault)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the hooked modules with the other finders, then runs their hook right after they execute."""

    def find_spec(self, name, path=None, target=None):
        if name not in HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                execute, hook = spec.loader.exec_module, HOOKS[name]

                def exec_module(module, execute=execute, hook=hook):
                    execute(module)
                    hook(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


if HOOKS:
    sys.meta_path.insert(0, _AfterImport())

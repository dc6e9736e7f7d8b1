"""Bad input: a one-line error naming the problem, exit code 2, nothing created."""

from __future__ import annotations

import pytest

from conftest import ROOT, run_script
from sweeps.depth_width import STUDY
from sweeps.runner import main

CASES = [
    (["--preset", "huge"], {}, "invalid choice: 'huge'"),
    (["--search", "bayes"], {}, "argument --search: invalid choice"),
    (["--scheduler", "pbt"], {}, "argument --scheduler: invalid choice"),
    (["--set", "epochs=0"], {}, "epochs=0 must be a positive integer"),
    (["--set", "epochs=-3"], {}, "epochs=-3 must be a positive integer"),
    (["--set", "widths=512-64"], {}, "over the budget of 512"),
    (["--set", "depth=3"], {}, "unknown config key 'depth'"),
    (["--set", "lr=fast"], {}, "lr='fast' should be a number"),
    (["--set", "epochs"], {}, "is not KEY=VALUE"),
    (["--set", "seeds=many"], {}, "seeds='many' should be an integer"),
    (["--num-samples", "0", "--search", "random"], {}, "--num-samples 0 must be at least 1"),
    (["--address", "127.0.0.1:1"], {}, "cannot reach Ray at --address 127.0.0.1:1"),
    ([], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}, "MLflow tracking server http://127.0.0.1:1 is unreachable"),
    ([], {"MLFLOW_TRACKING_URI": "bogus://nowhere"}, "cannot use MLflow tracking URI 'bogus://nowhere'"),
    (["--resume"], {}, "--resume: no earlier sweep of depth_width"),
    # a trial larger than the local machine would wait forever for resources that never come
    (["--cpus-per-trial", "1000"], {}, "a trial needs 1000 CPUs and 0 GPUs but this machine's Ray has"),
    (["--gpus-per-trial", "64"], {}, "lower --cpus-per-trial or --gpus-per-trial (0: train on the CPUs), or join a cluster with --address"),
    # depth_width's regression loop is not data-parallel: N workers would each train the whole data set alone
    (["--workers", "2"], {}, "--workers: depth_width's trials do not train data-parallel"),
]


@pytest.mark.parametrize("argv,env,message", CASES, ids=[" ".join(c[0]) or next(iter(c[1].values())) for c in CASES])
def test_bad_input_exits_2_with_one_line(argv, env, message, tmp_path, monkeypatch, capsys, clean_env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "res"
    with pytest.raises(SystemExit) as exit_info:
        main(STUDY, [*argv, "--results-dir", str(results)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and message in err, err
    assert not results.exists()  # no results folder and no MLflow store were created


def test_the_paper_preset_holds_a_share_of_a_gpu_and_says_so_where_there_is_none(tmp_path, capsys, clean_env):
    """depth_width's paper preset packs 16 trials on a GPU (--gpus-per-trial 1/16 unless given); on a machine without
    one (CI) the sweep is refused in one line naming the fix, and --gpus-per-trial 0 would train on the CPUs."""
    import torch

    from conftest import sweep_plan

    assert sweep_plan(STUDY, ["--preset", "paper"]).resources.gpus == 1 / 16
    assert sweep_plan(STUDY, ["--preset", "paper", "--gpus-per-trial", "0"]).resources.gpus == 0
    assert sweep_plan(STUDY, ["--preset", "quick"]).resources.gpus == 0
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the paper preset would run")
    with pytest.raises(SystemExit) as exit_info:
        main(STUDY, ["--preset", "paper", "--results-dir", str(tmp_path / "res")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "a trial needs 1 CPUs and 0.0625 GPUs" in err and "(0: train on the CPUs)" in err


def test_bad_input_from_the_command_line(tmp_path):
    proc = run_script([str(ROOT / "sweeps" / "depth_width.py"), "--set", "widths=256-256-64"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: widths=256-256-64 has 576 hidden units, over the budget of 512; "
                                   "choose widths summing to at most 512")
    assert list(tmp_path.iterdir()) == []


def test_help_documents_every_runner_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(STUDY, ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--preset", "--search", "--num-samples", "--scheduler", "--max-concurrent", "--cpus-per-trial",
                 "--gpus-per-trial", "--address", "--storage", "--results-dir", "--seed", "--resume", "--set"):
        assert flag in out
    assert "smoke:" in out and "paper:" in out

"""The README's main job, at the smoke preset: real data -> FM -> FT-FM, ResFT-FM -> evaluation -> report."""

import csv
import re

import pytest

from fmpolicy.cli import main
from fmpolicy.errors import UserError
from fmpolicy.pipeline import check_preset, load_preset


def test_smoke_pipeline_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "pipe"
    assert main(["pipeline", "preset=smoke", "eval.videos=1", f"out={out}"]) == 0
    report = (out / "report.md").read_text()
    assert "builtin:pusht_cchi_v7_lowdim.zarr.zip" in report and "| FT-FM | euler | 2 |" in report
    rows = list(csv.DictReader(open(out / "bench" / "bench.csv")))
    assert {r["method"] for r in rows} == {"FM", "FT-FM", "ResFT-FM"}
    for r in rows:
        assert 0.0 <= float(r["score"]) <= 1.0 and float(r["recon_mse_inverse"]) > 0
    assert re.search(r"\| FM \| euler \| 10 \| \d\.\d{5} ", report)
    # the preset's per-method settings reach that method's stage only
    commands = {m: line for line in report.splitlines() for m in ("ft_mle", "ft_residual") if f"method={m} " in line}
    assert "method.sample_split=True" in commands["ft_mle"] and "sample_split" not in commands["ft_residual"]
    assert list((out / "bench" / "videos").glob("*.mp4"))
    # re-running finds every stage done: nothing is trained again
    assert "train:" in capsys.readouterr().err  # (the first run did show training progress)
    assert main(["pipeline", "preset=smoke", f"out={out}"]) == 0
    assert "train:" not in capsys.readouterr().err


def test_pipeline_rejects_unknown_preset_and_keys(capsys, tmp_path):
    assert main(["pipeline", "preset=huge", f"out={tmp_path}"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["pipeline", "train.stepz=3", f"out={tmp_path}"]) == 2
    assert "unknown config key 'train.stepz'" in capsys.readouterr().err
    assert main(["pipeline", "source=teacher", f"out={tmp_path}"]) == 2
    assert "source 'teacher' unknown" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown section\\(s\\) ft_mel: use nfe, "):
        check_preset({**load_preset("default"), "ft_mel": {"train.steps": 400}}, "mine.yaml")


def test_pipeline_on_robomimic_lift_records_the_expert_then_trains_and_evaluates_in_worker_processes(tmp_path, capsys):
    import h5py

    out = tmp_path / "lift"
    argv = ["pipeline", "task=robomimic_lift_lowdim", "preset=smoke", "demos.episodes=4", "eval.videos=1"]
    assert main([*argv, "eval.max_episode_steps=40", f"out={out}"]) == 0
    assert "no dataset.path: recording the scripted expert" in capsys.readouterr().out
    with h5py.File(out / "demos.hdf5") as f:  # robomimic's layout, the task's demos.format
        assert f["data"].attrs["total"] > 0 and len(f["data"]) == 4
    report = (out / "report.md").read_text()
    assert "expert success rate 1.00" in report
    rows = list(csv.DictReader(open(out / "bench" / "bench.csv")))
    assert {r["method"] for r in rows} == {"FM", "FT-FM", "ResFT-FM"}
    for r in rows:  # 40 steps are too few to lift the cube: success is measured, and is 0 here
        assert float(r["success_rate"]) == 0.0 and float(r["env_steps_per_s"]) > 0
    assert list((out / "bench" / "videos").glob("*.mp4"))


def test_fine_tuning_stages_share_the_latents_the_first_one_computed(tmp_path):
    from fmpolicy.pipeline import _share_latents

    made, cache = tmp_path / "ft_mle" / "latents.pt", tmp_path / "ft_residual" / "latents.pt"
    _share_latents(made, cache)  # nothing computed yet: the stage computes its own
    assert not cache.exists()
    made.parent.mkdir()
    made.write_bytes(b"first")
    _share_latents(made, cache)
    assert cache.read_bytes() == b"first"
    made.write_bytes(b"second")
    _share_latents(made, cache)  # a stage's own cache is never overwritten
    assert cache.read_bytes() == b"first"

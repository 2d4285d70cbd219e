"""`fmpolicy compare`: seed-by-seed differences of two evaluations, their interval and clear errors."""

import csv
import json
import math

import numpy as np
import pytest

from fmpolicy.cli import main
from fmpolicy.errors import UserError
from fmpolicy.eval.paired import compare_episodes, read_draws, read_episodes


def _write(folder, seeds, scores, successes):
    folder.mkdir(parents=True)
    with open(folder / "episodes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "steps", "score", "success", "max_coverage"])
        for s, sc, su in zip(seeds, scores, successes):
            w.writerow([s, 300, sc, su, sc])
    return folder


def test_paired_difference_interval_and_counts(tmp_path, capsys):
    a = _write(tmp_path / "a", [10, 11, 12, 13], [0.5, 0.9, 1.0, 0.2], [False, False, True, False])
    b = _write(tmp_path / "b", [11, 12, 13, 14], [0.95, 1.0, 0.1, 0.7], [True, True, False, False])
    res = compare_episodes(read_episodes(a), read_episodes(b / "episodes.csv"))
    assert res["n_seeds"] == 3 and res["seeds"] == [11, 13]
    assert res["left_out"] == {"only_a": 1, "only_b": 1, "not_in_every_draw_a": 0, "not_in_every_draw_b": 0}
    d = np.array([0.05, 0.0, -0.1])
    half = 1.96 * d.std(ddof=1) / math.sqrt(3)
    assert res["score"]["diff"] == pytest.approx(d.mean())
    assert res["score"]["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert (res["score"]["b_above"], res["score"]["equal"], res["score"]["b_below"]) == (1, 1, 1)
    assert res["success"]["mean_a"] == pytest.approx(1 / 3) and res["success"]["mean_b"] == pytest.approx(2 / 3)
    assert (res["success"]["b_above"], res["success"]["equal"]) == (1, 2)

    assert main(["compare", f"a={a}", f"b={b}", f"out={tmp_path}/cmp"]) == 0
    printed = capsys.readouterr().out
    assert "3 shared seeds (11..13)" in printed and "1 seeds only in A and 1 only in B" in printed
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["score"]["diff"] == pytest.approx(d.mean()) and saved["b"] == str(b)


def test_noise_draws_are_averaged_per_seed_before_pairing(tmp_path, capsys):
    a1 = _write(tmp_path / "a1", [1, 2, 3], [0.5, 0.5, 1.0], [False, False, True])
    a2 = _write(tmp_path / "a2", [1, 2, 3], [1.0, 0.0, 1.0], [True, False, True])
    b1 = _write(tmp_path / "b1", [1, 2, 3, 4], [1.0, 0.5, 0.5, 0.0], [True, False, False, False])
    b2 = _write(tmp_path / "b2", [2, 3, 4], [1.0, 0.5, 0.0], [True, False, False])
    pooled, partial_a = read_draws([a1, a2])
    assert pooled[1] == {"score": 0.75, "success": 0.5} and pooled[3] == {"score": 1.0, "success": 1.0}
    pooled_b, partial_b = read_draws([b1, b2])
    assert sorted(pooled_b) == [2, 3, 4] and (partial_a, partial_b) == (0, 1)  # seed 1: in one draw of B only
    res = compare_episodes(pooled, pooled_b, partial=(partial_a, partial_b))
    assert res["left_out"] == {"only_a": 1, "only_b": 1, "not_in_every_draw_a": 0, "not_in_every_draw_b": 1}
    d = np.array([0.75 - 0.25, 0.5 - 1.0])  # seeds 2 and 3, each a mean over two draws
    assert res["n_seeds"] == 2 and res["score"]["diff"] == pytest.approx(d.mean())
    half = 1.96 * d.std(ddof=1) / math.sqrt(2)  # the seeds, not the four (draw, seed) pairs, are the units
    assert res["score"]["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert res["success"]["diff"] == pytest.approx(np.mean([0.5 - 0.0, 0.0 - 1.0]))

    assert main(["compare", f"a={a1},{a2}", f"b=[{b1}, {b2}]", f"out={tmp_path}/cmp"]) == 0
    printed = capsys.readouterr().out
    assert "the mean of A's 2 and B's 2 evaluations" in printed and "2 shared seeds (2..3)" in printed
    assert "0 seeds of A and 1 of B are left out: some of their evaluations lack them" in printed
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["a"] == f"{a1},{a2}"
    with pytest.raises(UserError, match="share no seed: run them with one eval.seed_start"):
        read_draws([a1, _write(tmp_path / "c", [7], [0.5], [False])])


def test_errors_name_the_fix(tmp_path, capsys):
    a = _write(tmp_path / "a", [1, 2], [0.5, 0.6], [False, False])
    b = _write(tmp_path / "b", [3, 4], [0.5, 0.6], [False, False])
    with pytest.raises(UserError, match="share no seed.*eval.seed_start"):
        compare_episodes(read_episodes(a), read_episodes(b))
    with pytest.raises(UserError, match="run `fmpolicy eval"):
        read_episodes(tmp_path / "missing")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="is a training run: pass its evaluation folder"):
        read_episodes(tmp_path / "run")
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="no column seed, score, success"):
        read_episodes(tmp_path / "other.csv")
    assert main(["compare", f"a={a}"]) == 2
    assert "compare takes a=EVAL_DIR[,EVAL_DIR...] b=EVAL_DIR[,...] [out=DIR] (got a)" in capsys.readouterr().err

"""The multi-stage training recipe: command lines, skipping finished stages, the shipped recipe."""
from pathlib import Path

import pytest
import yaml

from training.train_qa import parse_args
from training.train_recipe import run_recipe, stage_argv

ROOT = Path(__file__).resolve().parents[1]


def test_stage_argv_chains_bases_and_maps_args():
    outs = {"r1": Path("runs/r1")}
    stage = {"name": "r2", "out": "runs/r2", "base": "r1",
             "args": {"train": ["a.json", "b.json"], "lr": 5e-5, "max_steps": 1200, "answer": "majority"}}
    argv = stage_argv(stage, outs)
    args = parse_args(argv)
    assert args.base == str(Path("runs/r1") / "model") and args.out == "runs/r2"
    assert args.train == ["a.json", "b.json"] and args.lr == 5e-5 and args.max_steps == 1200
    assert args.answer == "majority" and args.resume


@pytest.mark.parametrize("stage,msg", [
    ({"name": "r2", "out": "x", "base": "r9", "args": {}}, "not an earlier stage"),
    ({"name": "r2", "out": "x", "args": {"out": "y"}}, "stage level"),
])
def test_stage_argv_rejects_bad_stages(stage, msg):
    with pytest.raises(ValueError, match=msg):
        stage_argv(stage, {"r1": Path("runs/r1")})


def test_finished_stages_are_skipped(tmp_path, capsys):
    (tmp_path / "a" / "model").mkdir(parents=True)
    (tmp_path / "a" / "model" / "config.json").write_text("{}")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stages": [
        {"name": "a", "out": str(tmp_path / "a"), "args": {"train": ["t.json"]}},
        {"name": "b", "out": str(tmp_path / "b"), "base": "a", "args": {"train": ["t.json"]}},
    ]}))
    final = run_recipe(recipe, dry_run=True)
    out = capsys.readouterr().out
    assert "[a] done, skipped" in out
    assert f"--base {tmp_path / 'a' / 'model'}" in out
    assert final == tmp_path / "b" / "model"


def test_shipped_recipe_never_trains_on_the_benchmark_or_dev_set():
    recipe = yaml.safe_load((ROOT / "models" / "minilm_qa" / "recipe.yaml").read_text())
    outs = {}
    for stage in recipe["stages"]:
        args = parse_args(stage_argv(stage, outs))
        outs[stage["name"]] = Path(stage["out"])
        assert args.train and all(f.startswith("../shared/data/qa/") for f in args.train)
        assert not any("squad-v1.1-dev" in f or "xquad" in f for f in args.train), args.train
        assert args.dev.endswith("xquad.en.json")
    assert len(outs) == len(recipe["stages"]) >= 1


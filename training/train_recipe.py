"""Run a multi-stage training recipe (a YAML list of ``training.train_qa`` runs) with one command.

The shipped model is made by a chain of runs, each starting from the previous one's model, so
``python -m training.train_recipe models/minilm_qa/recipe.yaml`` reproduces it. Each stage is an
ordinary ``train_qa`` run in its own folder: a finished stage (its ``model/`` exists) is skipped,
an interrupted one continues from its last checkpoint, so the command can be stopped and rerun.

Recipe format::

    stages:
      - name: r1
        out: runs/r1
        args: {train: [a.json, b.json], dev: dev.json, epochs: 1, lr: 1.0e-4}
      - name: r2
        out: runs/r2
        base: r1            # a previous stage's name: starts from its model
        args: {...}
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml


def stage_argv(stage: dict, outs: dict[str, Path]) -> list[str]:
    """The ``train_qa`` command line of one stage.

    Args:
        stage: one entry of the recipe's ``stages`` (``name``, ``out``, optional ``base``, ``args``).
        outs: run folders of the stages before it, by name.
    Returns:
        argv for ``training.train_qa.main``, always with ``--resume``.
    Raises:
        ValueError: ``base`` names no earlier stage (nor a ``package:`` base), or ``args`` sets
            ``out``/``base`` itself.
    """
    args = dict(stage.get("args") or {})
    if {"out", "base"} & set(args):
        raise ValueError(f"stage {stage['name']}: give out/base at the stage level, not in args")
    argv = ["--out", str(stage["out"])]
    if stage.get("base"):
        base = str(stage["base"])
        if base.startswith("package:"):            # a packaged base encoder (models/packaged_base.py)
            argv += ["--base", base]
        elif base not in outs:
            raise ValueError(f"stage {stage['name']}: base {base!r} is not an earlier stage or a package: reference")
        else:
            argv += ["--base", str(outs[base] / "model")]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv + ["--resume"]


def run_recipe(path: str | Path, install: str | Path | None = None, dry_run: bool = False) -> Path:
    """Run every unfinished stage in order; optionally copy the last model to ``install``.

    Returns:
        the last stage's model folder.
    """
    from training.train_qa import main as train

    recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    outs: dict[str, Path] = {}
    for stage in recipe["stages"]:
        argv = stage_argv(stage, outs)
        outs[stage["name"]] = Path(stage["out"])
        done = any((Path(stage["out"]) / "model" / f).exists() for f in ("config.json", "adapter_config.json"))
        print(f"[{stage['name']}] {'done, skipped' if done else 'python -m training.train_qa ' + ' '.join(argv)}",
              flush=True)
        if not done and not dry_run:
            train(argv)
    final = outs[recipe["stages"][-1]["name"]] / "model"
    if install and not dry_run:
        Path(install).mkdir(parents=True, exist_ok=True)
        for f in final.iterdir():
            shutil.copy2(f, Path(install) / f.name)
        print(f"copied {final} -> {install}", flush=True)
    return final


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe YAML, e.g. models/minilm_qa/recipe.yaml")
    p.add_argument("--install", help="copy the final model folder here (e.g. models/minilm_qa)")
    p.add_argument("--dry-run", action="store_true", help="print the stage commands only")
    args = p.parse_args(argv)
    run_recipe(args.recipe, args.install, args.dry_run)


if __name__ == "__main__":
    main()

"""A finished run whose data file moved: `evaluate` and `predict` take `data.<key>=` patches of the run's data
config, as the error message says, instead of refusing the very fix they suggest."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import train_one

POSITIVE = [f"a wonderful film {i},positive" for i in range(30)]
ROWS = ["text,label", *POSITIVE, *(f"a dull film {i},0" for i in range(30))]


def test_evaluate_takes_the_data_path_its_error_suggests(cli, isolated: Path, tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("\n".join(ROWS) + "\n")
    run = train_one(cli, isolated, "sentiment", "data=csv", f"data.path={reviews}")
    moved = tmp_path / "moved.csv"
    reviews.rename(moved)
    failed = cli("sentiment", "evaluate", f"run={run}")
    assert failed.code == 1 and "data.path=" in failed.err and "Traceback" not in failed.err
    result = cli("sentiment", "evaluate", f"run={run}", f"data.path={moved}")
    assert result.code == 0, result.err
    assert (run / "evaluations" / "test" / "evaluation.json").is_file()


def test_a_patch_cannot_smuggle_in_code(cli, isolated: Path, tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("\n".join(ROWS) + "\n")
    run = train_one(cli, isolated, "sentiment", "data=csv", f"data.path={reviews}")
    result = cli("sentiment", "evaluate", f"run={run}", "data._target_=os.system")
    assert result.code == 1 and "may not instantiate" in result.err

from pathlib import Path

from medseg.runs import BEST_WEIGHTS, LATEST_WEIGHTS, cross_validation_folders, trained_weights


def test_best_weights_win_over_latest(tmp_path: Path) -> None:
    (tmp_path / LATEST_WEIGHTS).write_bytes(b"latest")
    assert trained_weights(tmp_path) == tmp_path / LATEST_WEIGHTS
    (tmp_path / BEST_WEIGHTS).write_bytes(b"best")
    assert trained_weights(tmp_path) == tmp_path / BEST_WEIGHTS


def test_a_fold_without_weights_has_none(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("epoch\n")
    assert trained_weights(tmp_path) is None


def test_cross_validation_reads_the_numbered_folds_in_order(tmp_path: Path) -> None:
    for fold in ("fold_10", "fold_2", "fold_all_search", "fold_all", "fold_x1"):
        (tmp_path / fold / "validation").mkdir(parents=True)
    (tmp_path / "fold_3").mkdir()  # a fold that has not validated yet
    (tmp_path / "fold_4").mkdir()
    (tmp_path / "fold_4" / "validation").write_text("not a folder")
    found = cross_validation_folders(tmp_path)
    assert found == [tmp_path / "fold_2" / "validation", tmp_path / "fold_10" / "validation"]

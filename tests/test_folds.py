from pathlib import Path

from medseg.folds import cross_validation_folders, fold_number


def test_cross_validation_reads_the_numbered_folds_in_order(tmp_path: Path) -> None:
    for fold in ("fold_10", "fold_2", "fold_all_search", "fold_all", "fold_x1"):
        (tmp_path / fold / "validation").mkdir(parents=True)
    (tmp_path / "fold_3").mkdir()  # a fold that has not validated yet
    (tmp_path / "fold_4").mkdir()
    (tmp_path / "fold_4" / "validation").write_text("not a folder")
    found = cross_validation_folders(tmp_path)
    assert found == [tmp_path / "fold_2" / "validation", tmp_path / "fold_10" / "validation"]


def test_fold_number_is_the_number_after_fold_(tmp_path: Path) -> None:
    for fold in ("fold_0", "fold_7", "fold_all"):
        (tmp_path / fold / "validation").mkdir(parents=True)
    assert [fold_number(p) for p in cross_validation_folders(tmp_path)] == [0, 7]

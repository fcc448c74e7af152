from pathlib import Path

from medseg.folds import cross_validation_folders, first_model_dir, fold_number, member_dirs


def test_cross_validation_reads_the_numbered_folds_in_order(tmp_path: Path) -> None:
    for fold in ("fold_10", "fold_2", "fold_all_search", "fold_all", "fold_x1", "fold_2_1"):
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


def test_member_dirs_are_a_folds_numbered_folders_only(tmp_path: Path) -> None:
    names = ("fold_all", "fold_all_10", "fold_all_2", "fold_all_x", "fold_all_search",
             "fold_0", "fold_0_1", "fold_1", "fold_10", "fold_1_2")  # fmt: skip
    for name in names:
        (tmp_path / name).mkdir()
    (tmp_path / "fold_all_3").write_text("a file")
    assert [p.name for p in member_dirs(tmp_path, "all")] == ["fold_all_2", "fold_all_10"]
    assert [p.name for p in member_dirs(tmp_path, 0)] == ["fold_0_1"]
    assert [p.name for p in member_dirs(tmp_path, 1)] == ["fold_1_2"]  # not fold_10
    assert member_dirs(tmp_path, 2) == []


def test_first_model_dir_names_the_fold_a_further_model_belongs_to() -> None:
    run = Path("run")
    pairs = {"fold_0_1": "fold_0", "fold_3_12": "fold_3", "fold_all_2": "fold_all",
             "fold_0": "fold_0", "fold_10": "fold_10", "fold_all_search": "fold_all_search",
             "fold_all": "fold_all"}  # fmt: skip
    assert {k: first_model_dir(run / k) for k in pairs} == {k: run / v for k, v in pairs.items()}

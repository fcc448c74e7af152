from pathlib import Path

from medseg.runs import BEST_WEIGHTS, LATEST_WEIGHTS, trained_weights


def test_best_weights_win_over_latest(tmp_path: Path) -> None:
    (tmp_path / LATEST_WEIGHTS).write_bytes(b"latest")
    assert trained_weights(tmp_path) == tmp_path / LATEST_WEIGHTS
    (tmp_path / BEST_WEIGHTS).write_bytes(b"best")
    assert trained_weights(tmp_path) == tmp_path / BEST_WEIGHTS


def test_a_fold_without_weights_has_none(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("epoch\n")
    assert trained_weights(tmp_path) is None

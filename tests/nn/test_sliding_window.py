import pytest
import torch

from medseg.nn import sliding_window_inference
from medseg.nn.sliding_window import gaussian_importance_map, predict_volume, window_starts


@pytest.mark.parametrize(
    ("size", "roi"),
    [((50, 37), (16, 16)), ((7, 5), (16, 16)), ((33, 20, 9), (16, 8, 4)), ((16, 16), (16, 16))],
)
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_identity_network_reproduces_input(size, roi, mode):
    x = torch.randn(2, 3, *size)
    calls = []

    def identity(windows):
        calls.append(windows.shape[0])
        return windows

    y = sliding_window_inference(x, roi, 4, identity, overlap=0.5, mode=mode)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    assert max(calls) <= 4


def test_windows_of_all_batch_items_share_forward_passes():
    x = torch.randn(6, 1, 8, 8)
    batches = []
    sliding_window_inference(x, (8, 8), 4, lambda w: batches.append(len(w)) or w)
    assert batches == [4, 2]


def test_window_starts_cover_the_axis_with_overlap():
    for size, roi in [(100, 32), (33, 16), (16, 16), (5, 16)]:
        starts = window_starts(size, roi, 0.5)
        assert starts[0] == 0
        assert starts[-1] == max(size - roi, 0)
        assert all(b - a <= roi // 2 for a, b in zip(starts, starts[1:]))


def test_gaussian_map_peaks_in_the_centre_and_is_positive():
    weights = gaussian_importance_map((9, 9))
    assert float(weights[4, 4]) == 1.0
    assert float(weights.min()) > 0
    assert float(weights[0, 0]) < float(weights[2, 2])


def test_predict_volume_slices_along_an_axis():
    # A "network" that echoes channel 0 as class 1 logits: argmax follows the sign.
    def network(windows):
        return torch.cat([torch.zeros_like(windows[:, :1]), windows[:, :1]], dim=1)

    image = torch.randn(1, 10, 12, 6)
    probs = predict_volume(network, image, (8, 8), 4, slice_axis=2)
    assert probs.shape == (2, 10, 12, 6)
    torch.testing.assert_close(probs[1], torch.sigmoid(image[0]), atol=1e-5, rtol=1e-5)

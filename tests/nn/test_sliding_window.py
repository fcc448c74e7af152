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


def test_reduce_sees_short_stretches_and_keeps_their_result():
    # A position-dependent "network": argmax of the blend must equal the blend's argmax.
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, 5, 3, padding=1).eval()
    x = torch.randn(1, 1, 45, 23, 19)
    lengths = []

    def argmax(p):
        lengths.append(p.shape[2])
        return p.argmax(1, keepdim=True).to(torch.uint8)

    full = sliding_window_inference(x, (12, 10, 8), 3, conv)
    classes = sliding_window_inference(x, (12, 10, 8), 3, conv, reduce=argmax)
    assert classes.dtype == torch.uint8 and classes.shape == (1, 1, 45, 23, 19)
    assert torch.equal(classes, full.argmax(1, keepdim=True).to(torch.uint8))
    assert max(lengths) <= 12 and sum(lengths) == 45


def test_an_ensemble_is_the_mean_of_its_members():
    torch.manual_seed(0)
    nets = [torch.nn.Conv2d(1, 3, 3, padding=1).eval() for _ in range(2)]
    image = torch.randn(1, 30, 26)
    mean = predict_volume(nets, image, (16, 16))
    each = [predict_volume(n, image, (16, 16)) for n in nets]
    torch.testing.assert_close(mean, (each[0] + each[1]) / 2, atol=1e-6, rtol=1e-5)


def test_mirrored_copies_are_mirrored_back_before_averaging():
    # Window starts are symmetric on these sizes, so mirroring each window is mirroring the
    # image: the result is the mean of the prediction and the mirrored prediction of the
    # mirrored image.
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 3, 5, padding=2).eval()
    image = torch.randn(1, 32, 24)
    tta = predict_volume(net, image, (16, 16), mirror_axes=[(), (1,)])
    plain = predict_volume(net, image, (16, 16))
    mirrored = predict_volume(net, image.flip(2), (16, 16)).flip(2)
    torch.testing.assert_close(tta, (plain + mirrored) / 2, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(plain, mirrored, atol=1e-3)


def test_slices_are_mirrored_in_their_own_plane_and_reduced():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    image = torch.randn(1, 20, 9, 18)  # slices along axis 1
    tta = predict_volume(net, image, (8, 8), slice_axis=1, mirror_axes=[(), (2,)])
    mirrored = predict_volume(net, image.flip(3), (8, 8), slice_axis=1).flip(3)
    plain = predict_volume(net, image, (8, 8), slice_axis=1)
    torch.testing.assert_close(tta, (plain + mirrored) / 2, atol=1e-6, rtol=1e-5)
    classes = predict_volume(
        net, image, (8, 8), slice_axis=1, reduce=lambda p: p.argmax(0, keepdim=True)
    )
    assert torch.equal(classes[0], plain.argmax(0))


def test_a_bfloat16_network_gives_float32_probabilities_close_to_float32_ones():
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 3, 3, padding=1)
    image = torch.randn(1, 20, 18, 16)
    exact = predict_volume(network, image, (8, 8, 8), 2)
    half = predict_volume(network, image, (8, 8, 8), 2, dtype=torch.bfloat16)
    assert half.dtype == torch.float32
    seen = []
    network.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    predict_volume(network, image, (8, 8, 8), 2, dtype=torch.bfloat16)
    assert set(seen) == {torch.bfloat16}  # the network did run in bfloat16
    assert float((half - exact).abs().max()) < 0.02
    assert float((half.argmax(0) == exact.argmax(0)).float().mean()) > 0.97
    torch.testing.assert_close(half.sum(0), torch.ones(20, 18, 16))

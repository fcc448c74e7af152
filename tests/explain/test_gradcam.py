"""Grad-CAM against captum's LayerGradCam (2D and 3D, classifier and U-Net), Adebayo et al.'s
weight randomisation check, and layer names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from medseg.errors import ConfigError
from medseg.explain.gradcam import find_layer, grad_cam
from medseg.nn.classifier import ResidualClassifier
from medseg.nn.unet import UNet

captum = pytest.importorskip("captum.attr", reason="captum is a test extra")


@pytest.mark.parametrize("dim", [2, 3])
def test_classifier_maps_equal_captums(dim):
    torch.manual_seed(0)
    network = ResidualClassifier(dim, 2, 3, features=(4, 8, 16)).eval()
    inputs = torch.rand(2, 2, *(16,) * dim)
    for stage, target in (("encoder.2", 1), ("encoder.1", 2)):
        layer = find_layer(network, stage)
        ours = grad_cam(network, layer, inputs, lambda logits, k=target: logits[:, k])
        theirs = captum.LayerGradCam(network, layer).attribute(
            inputs, target=target, relu_attributions=True
        )
        torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-6)
        assert ours.abs().sum() > 0


def test_segmenter_maps_of_summed_label_logits_equal_captums():
    torch.manual_seed(0)
    network = UNet(1, 3, dim=3, features=(4, 8, 16)).eval()
    inputs = torch.rand(1, 1, 16, 16, 8)
    layer = find_layer(network, "encoder.2")
    ours = grad_cam(network, layer, inputs, lambda logits: logits[:, 2].flatten(1).sum(1))

    def summed(x: torch.Tensor) -> torch.Tensor:
        return network(x).flatten(2).sum(2)

    theirs = captum.LayerGradCam(summed, layer).attribute(inputs, target=2, relu_attributions=True)
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-6)


def test_an_unknown_layer_names_the_ones_there_are():
    network = ResidualClassifier(2, 1, 2, features=(4, 8))
    with pytest.raises(ConfigError, match="encoder.0, encoder.1"):
        find_layer(network, "encoder.7")


def _spot_batch(rng: np.random.Generator, count: int):
    images = rng.normal(0, 1, (count, 1, 24, 24)).astype(np.float32)
    labels = rng.integers(0, 2, count)
    corners = rng.integers(2, 17, (count, 2))
    for image, label, (r, c) in zip(images, labels, corners):
        if label:
            image[0, r : r + 5, c : c + 5] += 4
    return torch.from_numpy(images), torch.from_numpy(labels), corners


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_finds_the_evidence_and_changes_with_random_weights(seed):
    """Trained to tell noise with a bright square from noise alone, the map of the "square"
    class (the last stage) is brightest on the square's cells and peaks on or next to them;
    with every weight randomised (Adebayo et al. 2018's sanity check) the map is a different
    one (low rank correlation). A random network may still light up the bright square, so
    only the change is asserted."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = ResidualClassifier(2, 1, 2, features=(8, 16, 32), dropout=0.0)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    for _ in range(300):
        images, labels, _ = _spot_batch(rng, 32)
        loss = torch.nn.functional.cross_entropy(network(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network.eval()
    images, labels, corners = _spot_batch(np.random.default_rng(seed + 100), 64)
    keep = labels == 1
    images, corners = images[keep], corners[keep.numpy()]
    layer = find_layer(network, "encoder.2")  # 6 x 6: a cell is 4 x 4 pixels
    trained = grad_cam(network, layer, images, lambda y: y[:, 1])
    brighter, near = [], []
    for cam, (r, c) in zip(trained.numpy(), corners):
        square = np.zeros(cam.shape, bool)  # the cells the 5 x 5 square touches
        square[r // 4 : (r + 4) // 4 + 1, c // 4 : (c + 4) // 4 + 1] = True
        brighter.append(cam[square].mean() > cam[~square].mean())
        peak = np.unravel_index(int(cam.argmax()), cam.shape)
        near.append(np.abs(np.argwhere(square) - peak).max(1).min() <= 1)
    # The peak cell itself may sit one cell off the square (seen on some CPUs and seeds).
    assert np.mean(brighter) >= 0.9 and np.mean(near) >= 0.9
    for module in network.modules():  # cascading randomisation of every layer
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    random = grad_cam(network, layer, images, lambda y: y[:, 1])
    pairs = zip(trained.numpy(), random.numpy())
    correlations = [stats.spearmanr(a.flatten(), b.flatten())[0] for a, b in pairs]
    assert np.nanmean(correlations) < 0.75

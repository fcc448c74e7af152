import numpy as np

from medseg.train.sampler import PatchSampler, TrainingCase


def _case(shape, foreground_at):
    target = np.zeros(shape, np.uint8)
    target[foreground_at] = 1
    image = np.zeros((1, *shape), np.float32)
    image[0][foreground_at] = 1.0
    return TrainingCase("c", image, target)


def test_at_least_a_third_of_each_batch_holds_foreground():
    case = _case((64, 64, 32), (slice(60, 62), slice(1, 3), slice(30, 32)))
    sampler = PatchSampler([case], (16, 16, 8), np.random.default_rng(0))
    for _ in range(20):
        _, target = sampler.sample(3)
        with_foreground = sum(int(t.sum() > 0) for t in target)
        assert with_foreground >= 1


def test_patches_are_image_and_label_from_the_same_place():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, (20, 24, 12)).astype(np.uint8)
    case = TrainingCase("c", target[None].astype(np.float32) * 10, target)
    image, label = PatchSampler([case], (8, 8, 4), rng).sample(6)
    assert image.shape == (6, 1, 8, 8, 4) and label.shape == (6, 8, 8, 4)
    assert (image[:, 0] == label * 10).all()


def test_images_smaller_than_the_patch_are_padded():
    case = _case((5, 7), (slice(1, 2), slice(1, 2)))
    image, label = PatchSampler([case], (8, 8), np.random.default_rng(0)).sample(2)
    assert image.shape == (2, 1, 8, 8)
    assert int(label.sum()) == 2


def test_slices_for_a_2d_network_on_3d_data():
    case = _case((16, 16, 10), (slice(4, 8), slice(4, 8), slice(2, 6)))
    image, label = PatchSampler([case], (8, 8, 1), np.random.default_rng(0), slice_axis=2).sample(4)
    assert image.shape == (4, 1, 8, 8) and label.shape == (4, 8, 8)


def test_same_seed_same_batches():
    case = _case((30, 30, 10), (slice(10, 20), slice(10, 20), slice(2, 8)))
    a = PatchSampler([case], (8, 8, 4), np.random.default_rng(5)).sample(4)
    b = PatchSampler([case], (8, 8, 4), np.random.default_rng(5)).sample(4)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()

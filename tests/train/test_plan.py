import pytest
from pydantic import ValidationError

from medseg.errors import ConfigError
from medseg.train import Plan, auto_config
from medseg.train.auto_config import choose_patch_size

COMMON = dict(
    in_channels=1,
    label_values=[0, 1, 2],
    label_names=["background", "a", "b"],
    channel_names=["MR"],
    file_ending=".nii.gz",
)


def test_small_images_fit_whole_in_one_patch():
    config = auto_config(shapes=[(36, 50, 35)] * 3, spacings=[(1, 1, 1)] * 3, epochs=1, **COMMON)
    assert config.patch_size == [40, 56, 40]
    assert config.dim == 3
    assert config.num_classes == 3


def test_large_2d_images_get_a_bounded_square_patch_divisible_by_the_strides():
    patch, strides, _ = choose_patch_size((512, 512), (1.0, 1.0), 192 * 192)
    assert patch[0] == patch[1]
    total = [1, 1]
    for stride in strides:
        total = [t * s for t, s in zip(total, stride)]
    assert all(p % t == 0 for p, t in zip(patch, total))
    assert patch[0] * patch[1] <= 1.2 * 192 * 192


def test_2d_network_on_3d_data_slices_the_coarsest_axis():
    config = auto_config(
        shapes=[(80, 80, 24)], spacings=[(0.8, 0.8, 2.5)], dim=2, epochs=1, **COMMON
    )
    assert config.slice_axis == 2
    assert len(config.patch_size) == 2


def test_3d_network_on_2d_data_is_refused():
    with pytest.raises(ConfigError, match="2D"):
        auto_config(shapes=[(64, 64)], spacings=[(1, 1)], dim=3, epochs=1, **COMMON)


def test_overridden_patch_size_recomputes_the_layout():
    config = auto_config(
        shapes=[(80, 80, 24)],
        spacings=[(0.8, 0.8, 2.5)],
        patch_size=[32, 32, 8],
        epochs=1,
        **COMMON,
    )
    assert config.patch_size == [32, 32, 8]
    assert len(config.strides) < 5


def test_config_round_trips_through_json(tmp_path):
    config = auto_config(shapes=[(32, 32, 16)], spacings=[(1, 1, 2)], epochs=3, **COMMON)
    config.save(tmp_path)
    assert Plan.load(tmp_path) == config


def test_class_indices_map_to_label_values_in_the_smallest_dtype():
    import numpy as np

    small = auto_config(shapes=[(16, 16)], spacings=[(1, 1)], epochs=1, **COMMON)
    mapped = small.labels_from_classes(np.array([[0, 2], [1, 0]]))
    assert mapped.dtype == np.uint8 and mapped.tolist() == [[0, 2], [1, 0]]
    large = small.model_copy(update={"label_values": [0, 7, 300]})
    mapped = large.labels_from_classes(np.array([0, 1, 2]))
    assert mapped.dtype == np.uint16 and mapped.tolist() == [0, 7, 300]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("label_values", [0, -1, 2], "greater than or equal to 0"),
        ("label_values", [0, 1, 1], "must start at 0 and be unique"),
        ("label_values", [1, 0, 2], "must start at 0 and be unique"),
        ("patch_size", [0, 0, 0], "greater than or equal to 1"),
        ("patch_size", [4096, 4096, 4096], "exceeds 134217728 voxels"),
        ("features", [100_000, 200_000], "less than or equal to 2048"),
        ("batch_size", 0, "greater than or equal to 1"),
        ("median_spacing", [0.0, 1.0, 1.0], "greater than 0"),
        ("strides", [[1, 1]], "one entry per level"),
    ],
)
def test_a_plan_out_of_bounds_is_refused_with_its_field(field, value, problem):
    plan = auto_config(shapes=[(36, 50, 35)] * 3, spacings=[(1, 1, 1)] * 3, epochs=1, **COMMON)
    data = plan.model_dump()
    data[field] = value
    with pytest.raises(ValidationError, match=problem):
        Plan.model_validate(data)

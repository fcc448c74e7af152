from functools import partial

import pytest
import torch

from medseg.nn import FCN, MODELS, UNet, build_network, stage_layout
from medseg.nn.blocks import ConvNormAct, ResidualBlock
from medseg.nn.classifier import ResidualClassifier

RESIDUAL_UNET = partial(UNet, encoder_blocks=(1, 2, 2, 3))


@pytest.mark.parametrize("model_class", [UNet, FCN, RESIDUAL_UNET])
@pytest.mark.parametrize(
    ("dim", "size"),
    [(2, (64, 64)), (2, (37, 51)), (2, (5, 9)), (3, (32, 32, 16)), (3, (33, 27, 13))],
)
def test_output_has_input_spatial_shape(model_class, dim, size):
    net = model_class(2, 4, dim=dim, features=(4, 8, 16, 32))
    out = net(torch.randn(2, 2, *size))
    assert out.shape == (2, 4, *size)
    assert torch.isfinite(out).all()


def test_anisotropic_layout_pools_fine_axes_first():
    strides, kernels = stage_layout((64, 64, 16), (0.8, 0.8, 2.5))
    assert strides[1] == [2, 2, 1]
    assert kernels[0] == [3, 3, 1]
    # Once in-plane spacing catches up, the slice axis is pooled and gets full kernels.
    assert [2, 2, 2] in strides
    assert all(k == [3, 3, 3] for k in kernels[1:])


def test_layout_keeps_feature_maps_at_least_four_voxels():
    strides, _ = stage_layout((40, 56, 40), (1.0, 1.0, 1.0))
    total = torch.tensor(strides).prod(0)
    assert (torch.tensor([40, 56, 40]) / total >= 4).all()
    assert len(strides) == 4


def test_build_network_by_name_and_unknown_name():
    strides, kernels = stage_layout((32, 32), (1.0, 1.0), max_stages=4)
    net = build_network("fcn", 1, 2, 2, [4, 8, 16, 32], strides, kernels)
    assert isinstance(net, FCN)
    with pytest.raises(ValueError, match="unknown model"):
        build_network("resnet", 1, 2, 2, [4, 8, 16, 32], strides, kernels)


def test_unet_and_fcn_differ_in_design():
    unet = UNet(1, 2, dim=2, features=(4, 8, 16, 32))
    fcn = FCN(1, 2, dim=2, features=(4, 8, 16, 32))
    # The FCN has no decoder convolutions: it upsamples class scores only.
    assert not any("decoder" in name for name, _ in fcn.named_parameters())
    assert any("decoder" in name for name, _ in unet.named_parameters())


def test_resunet_has_residual_encoder_stages_and_one_convolution_per_decoder_stage():
    strides, kernels = stage_layout((40, 56, 40), (1.0, 1.0, 1.0))
    net = build_network("resunet", 1, 3, 3, [4, 8, 16, 32], strides, kernels, True)
    # nnU-Net's ResEnc U-Net: 1, 3, 4, 6 residual blocks in the first four stages
    assert [len(stage) for stage in net.encoder] == [1, 3, 4, 6]
    assert all(isinstance(block, ResidualBlock) for stage in net.encoder for block in stage)
    assert all(isinstance(stage, ConvNormAct) for stage in net.decoder)
    outputs = net.train()(torch.randn(2, 1, 40, 56, 40))
    assert [tuple(o.shape[2:]) for o in outputs] == [(40, 56, 40), (20, 28, 20)]
    deep = stage_layout((128, 128, 128), (1.0, 1.0, 1.0))  # six stages: 6 blocks from stage 3
    net = build_network("resunet", 1, 3, 3, [4, 8, 16, 32, 64, 64], *deep)
    assert [len(stage) for stage in net.encoder] == [1, 3, 4, 6, 6, 6]
    plain = build_network("unet", 1, 3, 3, [4, 8, 16, 32], strides, kernels)
    assert not any(isinstance(m, ResidualBlock) for m in plain.modules())
    assert set(MODELS) == {"unet", "resunet", "fcn"}


def test_a_residual_block_projects_its_shortcut_only_where_the_shape_changes():
    same = ResidualBlock(3, 8, 8, kernel_size=(3, 3, 1))
    assert isinstance(same.shortcut, torch.nn.Identity)
    x = torch.randn(1, 8, 6, 6, 4)
    assert same(x).shape == x.shape
    strided = ResidualBlock(3, 8, 16, kernel_size=(3, 3, 1), stride=(2, 2, 1))
    assert strided(x).shape == (1, 16, 3, 3, 4)
    assert strided.shortcut[0].stride == (2, 2, 1) and strided.body[0].kernel_size == (3, 3, 1)
    assert isinstance(strided.body[1], torch.nn.InstanceNorm3d)
    assert isinstance(ResidualBlock(2, 8, 8, norm="batch").body[1], torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="unknown norm"):
        ResidualBlock(2, 8, 8, norm="group")


def test_the_classifier_keeps_its_weight_names():
    # saved classifiers (safetensors) load by these names: the shared block must keep them
    names = set(ResidualClassifier(2, 1, 2, features=(4, 8)).state_dict())
    assert {"encoder.0.0.body.0.weight", "encoder.0.0.body.1.running_mean"} <= names
    assert {"encoder.1.0.shortcut.0.weight", "encoder.1.1.body.3.weight"} <= names
    assert "encoder.1.1.shortcut.0.weight" not in names


@pytest.mark.parametrize("encoder_blocks", [None, (1, 2)])
def test_unet_learns_a_tiny_problem(encoder_blocks):
    torch.manual_seed(0)
    net = UNet(1, 2, dim=2, features=(8, 16), encoder_blocks=encoder_blocks)
    x = torch.randn(4, 1, 16, 16)
    y = (x[:, 0] > 0.5).long()
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    first = float(loss_fn(net(x), y).detach())
    for _ in range(60):
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 3

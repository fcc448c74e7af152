import pytest
import torch

from medseg.nn import FCN, UNet, build_network, stage_layout


@pytest.mark.parametrize("model_class", [UNet, FCN])
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


def test_unet_learns_a_tiny_problem():
    torch.manual_seed(0)
    net = UNet(1, 2, dim=2, features=(8, 16))
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

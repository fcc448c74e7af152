import torch

from medseg.nn import DiceCELoss


def test_perfect_logits_give_near_zero_loss():
    target = torch.randint(0, 3, (2, 8, 8, 4))
    logits = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 50
    assert float(DiceCELoss()(logits, target)) < 1e-3


def test_wrong_logits_give_high_loss_and_finite_gradients():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1
    logits = torch.zeros(2, 2, 8, 8, requires_grad=True)
    with torch.no_grad():
        logits[:, 1] = 10.0  # everything predicted foreground
    loss = DiceCELoss()(logits, target)
    loss.backward()
    assert float(loss.detach()) > 1.0
    assert torch.isfinite(logits.grad).all()


def test_dice_part_matches_hand_computation():
    # Hard probabilities: prediction covers 4 voxels, reference 2, overlap 2 -> Dice 2*2/6.
    target = torch.tensor([[1, 1, 0, 0, 0, 0]])
    pred = torch.tensor([[1, 1, 1, 1, 0, 0]])
    logits = torch.nn.functional.one_hot(pred, 2).movedim(-1, 1).float() * 100
    loss = DiceCELoss(smooth=0.0)(logits, target)
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert abs(float(loss - ce) - (1 - 4 / 6)) < 1e-5

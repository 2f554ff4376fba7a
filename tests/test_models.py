import pytest
import torch
from torch import nn

from dleff.models import CNN, MLP, TensorCount, count_buffers, count_parameters
from dleff.train import accuracy


def test_mlp_has_the_seed_layout_and_shapes():
    mlp = MLP(60, 2)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(60, 100), (100, 100), (100, 2)]
    assert mlp(torch.randn(5, 60)).shape == (5, 2)
    # 60*100+100 + 100*100+100 + 100*2+2
    assert count_parameters(mlp) == TensorCount(6, 16402)
    assert count_buffers(mlp) == TensorCount(0, 0)


def test_mlp_dropout_sits_after_each_activation():
    mlp = MLP(4, 3, hidden=(8, 8, 8), dropout=0.5)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "ReLU", "Dropout"] * 3 + ["Linear"]
    assert not any(isinstance(m, nn.Dropout) for m in MLP(4, 3))


@pytest.mark.parametrize("in_channels, size, classes", [(1, 28, 10), (3, 32, 10), (3, 28, 4)])
def test_cnn_shapes(in_channels, size, classes):
    net = CNN(in_channels, classes, size)
    assert net(torch.randn(2, in_channels, size, size)).shape == (2, classes)


def test_batch_norm_adds_two_parameters_and_three_buffers_per_layer():
    plain, normed = CNN(batch_norm=False), CNN(batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in normed.modules()) == 2
    extra = count_parameters(normed).tensors - count_parameters(plain).tensors
    assert extra == 2 * 2  # weight and bias per layer
    # gamma and beta for 32 and 64 channels
    assert count_parameters(normed).elements - count_parameters(plain).elements == 2 * (32 + 64)
    # running_mean, running_var (one number per channel) and num_batches_tracked (one number)
    assert count_buffers(plain) == TensorCount(0, 0)
    assert count_buffers(normed) == TensorCount(2 * 3, 2 * (32 + 64) + 2)


def test_cnn_dropout_only_in_the_head():
    net = CNN(dropout=0.5)
    assert [type(m).__name__ for m in net.head] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert not any(isinstance(m, nn.Dropout) for m in net.features)
    assert count_parameters(net) == count_parameters(CNN())


def test_count_parameters_can_skip_frozen_ones():
    net = CNN()
    for p in net.features.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == count_parameters(net.head)


def test_bad_settings_say_what_to_do():
    with pytest.raises(ValueError, match="multiple of 4"):
        CNN(image_size=30)
    with pytest.raises(ValueError, match="probability"):
        MLP(3, 2, dropout=1.5)


def test_accuracy_scores_in_eval_mode_and_restores_the_mode():
    model = nn.Sequential(nn.Dropout(0.9), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    images, labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), torch.tensor([0, 1, 1])
    model.train()
    # Dropout would scramble the predictions in train mode; in eval mode two of three are right.
    assert accuracy(model, images, labels, batch_size=2) == pytest.approx(2 / 3)
    assert model.training

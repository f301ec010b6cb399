"""Device names: a wrong one lists the choices instead of torch's parser error."""

from __future__ import annotations

import pytest
import torch

from engine.device import pick_device


@pytest.mark.parametrize("name", ["nonsense", "", "cuda:x", "gpu"])
def test_a_name_that_is_no_device_lists_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=rf"device '{name}' is not a device; choose one of auto, cpu, cuda, cuda:N"):
        pick_device(name)


def test_a_torch_device_fieldwork_cannot_use_is_refused() -> None:
    with pytest.raises(ValueError, match="device 'meta' cannot train or render here; choose one of auto, cpu"):
        pick_device("meta")


def test_cpu_and_auto_work() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the missing-CUDA message cannot show")
def test_cuda_without_cuda_says_so() -> None:
    with pytest.raises(ValueError, match="'cuda:1' was asked for but CUDA is not available"):
        pick_device("cuda:1")

import copy

import numpy as np
import pytest
import torch

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.training.optimizer import PortableAdamW, exact_sqrt


def test_exact_sqrt_is_correctly_rounded() -> None:
    x = torch.rand(10_000) * 10
    expected = np.sqrt(x.numpy().astype(np.float64)).astype(np.float32)
    assert np.array_equal(exact_sqrt(x).numpy(), expected) and exact_sqrt(x).dtype == torch.float32


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def run(make, steps: int = 5) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = net()
    opt = make(model.parameters())
    return train(model, opt, steps), opt


def test_follows_torch_adamw_but_for_the_rounding_of_one_sqrt() -> None:
    ours, _ = run(lambda p: PortableAdamW(p, lr=1e-2, weight_decay=0.1))
    theirs, _ = run(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, foreach=False))
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_parameter_without_gradient_or_with_zero_gradient_stays() -> None:
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = PortableAdamW([p, q], lr=0.1)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(p, torch.ones(3)) and torch.equal(q, torch.ones(3))


def test_state_dict_resumes_exactly() -> None:
    make = lambda p: PortableAdamW(p, lr=1e-2)  # noqa: E731
    straight, _ = run(make, steps=6)
    half, opt = run(make, steps=3)
    again = net()
    again.load_state_dict(copy.deepcopy(half.state_dict()))
    resumed = make(again.parameters())
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    for a, b in zip(train(again, resumed, 3).parameters(), straight.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lr": -1.0}, "learning rate -1.0: expected >= 0"),
    ({"lr": 1e-3, "betas": (0.9, 1.0)}, r"betas \(0.9, 1.0\): expected two values in \[0, 1\)"),
    ({"lr": 1e-3, "weight_decay": -1.0}, "expected eps > 0 and weight_decay >= 0"),
])
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        PortableAdamW([torch.nn.Parameter(torch.ones(1))], **kwargs)

"""Entropic optimal transport between two sets of embeddings (Sinkhorn, in log space).

Given a cost matrix ``C`` (n x m) and marginals ``a`` (n,), ``b`` (m,) that each sum
to 1, entropic optimal transport finds the plan

    P* = argmin_{P >= 0, P 1 = a, P^T 1 = b}  sum_ij P_ij C_ij - epsilon * H(P),
    H(P) = -sum_ij P_ij (log P_ij - 1),

whose solution has the form ``P_ij = exp((f_i + g_j - C_ij) / epsilon)``. Sinkhorn
alternates the two marginal constraints on the potentials ``f`` and ``g``; working
with ``log`` potentials and ``logsumexp`` keeps it stable for small ``epsilon``
(where ``exp(-C / epsilon)`` would underflow to zero). The transport distance is
``d = sum_ij P*_ij C_ij`` (the plan's cost, without the entropy term).

Everything is batched over leading dimensions and differentiable: gradients flow
through the unrolled iterations into ``C`` (and so into whatever embedded the
trajectories), which is what training on optimal-transport distances needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_EPSILON = 0.05
"""Entropy weight, in the units of the cost (a cosine cost lies in [0, 2])."""
DEFAULT_ITERATIONS = 100
"""Sinkhorn iterations (each updates both potentials)."""
_LOG_ZERO_MASS = -1e4
"""Log weight given to points with zero mass (padding): exp of it is 0 in float32,
but unlike ``-inf`` it never makes ``inf - inf`` NaNs in the iterations or gradients."""


def cosine_cost(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``C_ij = 1 - cos(source_i, target_j)``, in [0, 2].

    :param source: ``(..., n, D)`` embeddings.
    :param target: ``(..., m, D)`` embeddings.
    :return: ``(..., n, m)`` costs. A zero vector (e.g. padding) has cosine 0 with
        everything rather than NaN.
    """
    source = F.normalize(source, dim=-1)
    target = F.normalize(target, dim=-1)
    return 1.0 - source @ target.transpose(-1, -2)


def sinkhorn(
    cost: torch.Tensor,
    source_weights: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
    epsilon: float = DEFAULT_EPSILON,
    iterations: int = DEFAULT_ITERATIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic optimal transport plan and distance for a (batch of) cost matrices.

    With log marginals ``log a``, ``log b``, each iteration sets

        f_i = epsilon * (log a_i - logsumexp_j((g_j - C_ij) / epsilon))
        g_j = epsilon * (log b_j - logsumexp_i((f_i - C_ij) / epsilon))

    and the plan is ``P_ij = exp((f_i + g_j - C_ij) / epsilon)``. After the last
    iteration the columns of ``P`` sum to ``b`` exactly and the rows to ``a`` up to
    the convergence error, which shrinks with more ``iterations`` or a larger
    ``epsilon`` (the problem is better conditioned).

    :param cost: ``(..., n, m)`` cost matrices; ``n`` and ``m`` may differ.
    :param source_weights: ``(..., n)`` or ``(n,)`` non-negative weights summing to 1
        (zeros mark padding); default uniform ``1 / n``.
    :param target_weights: ``(..., m)`` or ``(m,)`` likewise; default uniform ``1 / m``.
    :param epsilon: entropy weight (> 0), in the units of ``cost``: smaller is closer
        to exact (unregularised) transport and a sharper plan, but needs more
        iterations to converge.
    :param iterations: number of Sinkhorn iterations (>= 1).
    :return: ``(plan, distance)``: ``plan`` ``(..., n, m)`` and
        ``distance = sum_ij plan_ij cost_ij`` of shape ``(...)``.
    :raises ValueError: on a cost that is not at least 2-D, weights of the wrong
        length, ``epsilon <= 0`` or ``iterations < 1``.
    """
    if cost.ndim < 2:
        raise ValueError(f"cost must have shape (..., n, m), got {tuple(cost.shape)}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    n, m = cost.shape[-2:]
    if n == 0 or m == 0:
        raise ValueError(f"cannot transport between empty sets: cost shape {tuple(cost.shape)}")
    log_a = _log_weights(source_weights, n, cost, "source_weights")
    log_b = _log_weights(target_weights, m, cost, "target_weights")

    scaled = -cost / epsilon  # the Gibbs kernel in log space: log K_ij = -C_ij / epsilon
    # Potentials divided by epsilon (u = f / epsilon, v = g / epsilon), so the
    # updates need no further scaling; u is computed first, so only v starts at 0.
    v = torch.zeros(*cost.shape[:-2], m, device=cost.device, dtype=cost.dtype)
    for _ in range(int(iterations)):
        u = log_a - torch.logsumexp(scaled + v.unsqueeze(-2), dim=-1)
        v = log_b - torch.logsumexp(scaled + u.unsqueeze(-1), dim=-2)
    plan = torch.exp(scaled + u.unsqueeze(-1) + v.unsqueeze(-2))
    return plan, (plan * cost).sum(dim=(-2, -1))


def _log_weights(
    weights: torch.Tensor | None, count: int, cost: torch.Tensor, name: str
) -> torch.Tensor:
    """Log of the marginal weights (uniform when ``None``); zero weight -> a very
    negative finite number, so padding gets no mass without NaNs."""
    if weights is None:
        return torch.full((count,), -math.log(count),
                          device=cost.device, dtype=cost.dtype)
    weights = weights.to(device=cost.device, dtype=cost.dtype)
    if weights.shape[-1] != count:
        raise ValueError(f"{name} has {weights.shape[-1]} entries for {count} points")
    if bool((weights < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    positive = weights > 0
    return torch.where(positive, weights.clamp_min(1e-30).log(),
                       torch.full_like(weights, _LOG_ZERO_MASS))


def ot_distance(
    source: torch.Tensor,
    target: torch.Tensor,
    epsilon: float = DEFAULT_EPSILON,
    iterations: int = DEFAULT_ITERATIONS,
) -> torch.Tensor:
    """Optimal-transport distance between two embedded trajectories under the cosine
    cost, with uniform marginals: ``sum_ij P*_ij (1 - cos(source_i, target_j))``.

    :param source: ``(..., n, D)``; :param target: ``(..., m, D)``.
    :return: ``(...)`` distances in [0, 2].
    """
    return sinkhorn(cosine_cost(source, target), epsilon=epsilon, iterations=iterations)[1]

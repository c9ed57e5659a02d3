"""tasks.from_module: a user's recurrent torch model as a System.

Exact spectra by construction (networks at rest, linear regimes, saturated gates), the analytic
tangent against autodiff and central differences, torch's own forward, batch = single runs,
float32, bad input, and the registry's RNN tasks rebuilt from torch.nn modules.
"""

import numpy as np
import pytest
import torch
from torch import nn

import tasks
from reference_systems import Map, TrajectoryRNG, computed
from suite import estimators
from suite.core.errors import InvalidArgumentError
from suite.scoring.tolerance import derive
from tasks.modules import ModuleMap
from tasks.sequences import sequence_task

F64 = torch.float64


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Modules built here draw their weights from torch's global generator: seed it, so that no test depends
    on which tests ran before it in the same process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _with_eigenvalues(lams, seed):
    """A real matrix Q diag(lams) Q^-1 with a well-conditioned Q (seeded)."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.eye(len(lams), dtype=F64) + 0.2 * torch.randn(len(lams), len(lams), dtype=F64, generator=g)
    return Q @ torch.diag(torch.tensor(lams, dtype=F64)) @ torch.linalg.inv(Q)


def _set(module, **tensors):
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(value)
    return module


def _check_spectrum(system, expected, *, steps=2000, transient=200, batch=2, k=None, dtype=F64):
    """qr's estimate within the tolerance of suite.scoring.tolerance.derive (bias 1 nat / T, round-off)."""
    expected = np.sort(np.asarray(expected, dtype=np.float64))[::-1]
    res = estimators.get("qr").estimate(system, steps, transient=transient, batch=batch, k=k or len(expected),
                                        seed=0, dtype=dtype)
    tol = derive(stderr=res.stderr, dof=res.meta["stderr_dof"], T=steps, bias_nats=1.0,
                 exact_scale=np.abs(expected), steps=steps, dtype=dtype).total
    err = np.abs(res.exponents - expected)
    assert np.all(err <= tol), (res.exponents, expected, tol)
    return res


# -- exact spectra by construction ------------------------------------------------------------------------
def test_tanh_rnn_at_rest_has_log_abs_eigenvalues_of_w_hh():
    """Zero input, zero biases, contracting W_hh: h -> 0, where the tangent map is W_hh."""
    lams = [0.9, -0.6, 0.4, 0.2]
    rnn = nn.RNN(2, 4, bias=False)
    _set(rnn, weight_hh_l0=_with_eigenvalues(lams, 1))
    system = tasks.from_module(rnn, None)
    assert system.dim == 4 and not system.is_random and system.hand_written_tangent
    _check_spectrum(system, np.log(np.abs(lams)))


def test_two_layer_tanh_rnn_spectrum_is_the_union_of_the_layers():
    """Layer 1 reads layer 0's new h: the Jacobian at rest is block lower-triangular, [[W0, 0], [W1_ih W0, W1]]."""
    l0, l1 = [0.8, -0.5], [0.65, 0.3]
    rnn = nn.RNN(3, 2, num_layers=2, bias=False, batch_first=True)
    _set(rnn, weight_hh_l0=_with_eigenvalues(l0, 2), weight_hh_l1=_with_eigenvalues(l1, 3))
    system = tasks.from_module(rnn, None)
    J = system.jacobian(torch.zeros(1, 4, dtype=F64))[0]
    assert torch.equal(J[:2, 2:], torch.zeros(2, 2, dtype=F64))
    assert torch.allclose(J[2:, :2], rnn.weight_ih_l1.detach().to(F64) @ rnn.weight_hh_l0.detach().to(F64),
                          rtol=0, atol=1e-15)
    _check_spectrum(system, np.log(np.abs(l0 + l1)))


def test_relu_rnn_in_the_linear_regime():
    """Nonnegative weights, positive bias: the state stays positive, the map is linear, exponents ln|eig W|."""
    W = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.3], [0.0, 0.0, 0.25]], dtype=F64)  # triangular: eig = diag
    rnn = nn.RNNCell(1, 3, nonlinearity="relu")
    _set(rnn, weight_hh=W, weight_ih=torch.ones(3, 1), bias_ih=torch.ones(3), bias_hh=torch.zeros(3))
    # positive inputs drawn i.i.d. from a table: a random, still linear map (an affine drive)
    system = tasks.from_module(rnn, torch.tensor([[0.5], [1.0], [2.0]]))
    assert system.is_random
    _check_spectrum(system, np.log([0.7, 0.5, 0.25]))


def test_gru_with_a_constant_update_gate_has_exponents_log_z():
    """z = sigmoid(b_iz) fixed, n independent of h (W_hn = 0): h' = (1 - z) n(u) + z h, tangent diag(z)."""
    z = torch.tensor([0.9, 0.6, 0.3], dtype=F64)
    gru = nn.GRU(2, 3, num_layers=1)
    w_hh = gru.weight_hh_l0.detach().clone().to(F64)
    w_hh[3:] = 0.0                         # z and n rows: no h dependence (r rows stay random)
    w_ih = gru.weight_ih_l0.detach().clone().to(F64)
    w_ih[3:6] = 0.0                        # z rows: no input dependence
    b_ih = gru.bias_ih_l0.detach().clone().to(F64)
    b_ih[3:6] = torch.log(z / (1 - z))     # logit z
    _set(gru, weight_hh_l0=w_hh, weight_ih_l0=w_ih, bias_ih_l0=b_ih,
         bias_hh_l0=torch.cat([gru.bias_hh_l0[:3].detach(), torch.zeros(6)]))
    system = tasks.from_module(gru, torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), input_noise=0.1)
    _check_spectrum(system, np.log(z.numpy()))


def test_lstm_with_saturated_output_gate_has_exponents_log_f():
    """o = 1 (bias +40 saturates it in float64), i, f, g constant: c' = f c + i g, h' = tanh(c').

    The Jacobian is [[0, diag(1 - h'^2) diag(f)], [0, diag(f)]]: H exponents ln f_j and H at -inf
    (the leading H are estimated)."""
    H, f = 3, torch.tensor([0.95, 0.7, 0.4], dtype=F64)
    lstm = nn.LSTM(2, H, num_layers=1, dtype=F64)
    w_hh, w_ih = torch.zeros(4 * H, H, dtype=F64), torch.zeros(4 * H, 2, dtype=F64)
    w_hh[3 * H:] = 0.3 * torch.randn(H, H, dtype=F64, generator=torch.Generator().manual_seed(4))  # o rows
    w_ih[3 * H:] = 0.3
    b = torch.cat([torch.full((H,), -1.0, dtype=F64), torch.log(f / (1 - f)), torch.full((H,), 0.5, dtype=F64),
                   torch.full((H,), 40.0, dtype=F64)])
    _set(lstm, weight_hh_l0=w_hh, weight_ih_l0=w_ih, bias_ih_l0=b, bias_hh_l0=torch.zeros(4 * H))
    system = tasks.from_module(lstm, torch.rand(16, 2, generator=torch.Generator().manual_seed(1)))
    assert system.dim == 2 * H
    _check_spectrum(system, np.log(f.numpy()), k=H)


class LinearCell(nn.Module):
    """A custom cell with a tuple state: h' = A h + B u, s' = 0.5 s + h (autodiff tangent)."""

    def __init__(self, A):
        super().__init__()
        self.A = nn.Parameter(A.clone())
        self.B = nn.Parameter(torch.ones(A.shape[0], 1, dtype=A.dtype))
        self.input_size = 1

    def forward(self, u, state):
        h, s = state if state is not None else (torch.zeros(u.shape[0], 2, 2, dtype=u.dtype),
                                                torch.zeros(u.shape[0], 1, dtype=u.dtype))
        h1 = (h.reshape(-1, 4) @ self.A.T + u @ self.B.T).reshape(-1, 2, 2)
        return h1, 0.5 * s + h1[:, :1, 0]


def test_custom_module_with_a_tuple_state_by_autodiff():
    lams = [0.8, -0.7, 0.3, 0.1]
    A = _with_eigenvalues(lams, 5)
    system = tasks.from_module(LinearCell(A), lambda g, b: g.normal(1), name="linear-cell", validation={"steps": 100})
    assert system.name == "linear-cell" and system.dim == 5 and not system.hand_written_tangent
    assert system.capabilities.validation["steps"] == 100
    x = torch.randn(2, 5, dtype=F64)
    h, s = system.unpack(x)
    assert h.shape == (2, 2, 2) and s.shape == (2, 1) and torch.equal(system.pack((h, s)), x)
    _check_spectrum(system, np.log(np.abs(lams + [0.5])))


# -- cross-routes -----------------------------------------------------------------------------------------
class Wrapped(nn.Module):
    """A torch.nn RNN/GRU/LSTM or cell behind forward(u, h) -> h: from_module takes the autodiff route.

    The state is batch-first, (B, L, H) per tensor, i.e. layer 0 h, layer 1 h, ... then the c's."""

    def __init__(self, m):
        super().__init__()
        self.m, self.input_size = m, m.input_size

    def forward(self, u, h):
        if not isinstance(self.m, nn.RNNBase):
            return self.m(u, h)
        flip = (lambda t: tuple(a.transpose(0, 1).contiguous() for a in t) if isinstance(t, tuple)  # noqa: E731
                else t.transpose(0, 1).contiguous())
        _, out = self.m(u.unsqueeze(1) if self.m.batch_first else u.unsqueeze(0), None if h is None else flip(h))
        return flip(out)


def _standard_modules():
    torch.manual_seed(0)
    return [nn.RNN(3, 4, num_layers=2), nn.RNN(3, 4, nonlinearity="relu", batch_first=True),
            nn.GRU(3, 4, num_layers=2, batch_first=True), nn.LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, bias=False),
            nn.RNNCell(3, 4), nn.GRUCell(3, 4), nn.LSTMCell(3, 4)]


@pytest.mark.parametrize("index", range(8))
def test_step_equals_torchs_own_forward_and_tangent_equals_finite_differences(index):
    module = _standard_modules()[index]
    inputs = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    system = tasks.from_module(module, inputs, input_noise=0.05)
    assert system.hand_written_tangent and system.name == type(module).__name__
    B = 5
    x = system.sample_initial(B, TrajectoryRNG(1, B))
    u = system._noise(TrajectoryRNG(2, B), x)
    m64 = Wrapped(module).to(F64)
    with torch.no_grad():
        own = m64.m(u.unsqueeze(1) if getattr(module, "batch_first", False) else u.unsqueeze(0), system.unpack(x))[1] \
            if isinstance(module, nn.RNNBase) else m64(u, system.unpack(x))
    step = system.step(x, TrajectoryRNG(2, B))
    assert torch.equal(step, system.pack(own))  # torch's own cell functions: bit for bit
    V = torch.randn(B, system.dim, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    x1, JV = system.tangent(x, V, TrajectoryRNG(2, B))
    assert torch.equal(x1, step)
    eps = 1e-6
    for j in range(3):
        fd = (system.step(x + eps * V[:, :, j], TrajectoryRNG(2, B))
              - system.step(x - eps * V[:, :, j], TrajectoryRNG(2, B))) / (2 * eps)
        assert torch.linalg.vector_norm(JV[:, :, j] - fd) <= 1e-6 * torch.linalg.vector_norm(fd)


@pytest.mark.parametrize("index", [0, 2, 3, 6, 7])
def test_analytic_tangent_equals_autodiff_through_torchs_module(index):
    """The same module through the analytic route and, wrapped as a custom module, through autodiff."""
    module = _standard_modules()[index]
    inputs = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    analytic = tasks.from_module(module, inputs, input_noise=0.05)
    auto = tasks.from_module(Wrapped(module), inputs, input_noise=0.05)
    assert not auto.hand_written_tangent and auto.dim == analytic.dim
    B = 3
    x = analytic.sample_initial(B, TrajectoryRNG(1, B))
    # the two layouts differ for stacked modules: map through each system's own torch state
    to_auto = torch.func.vmap(lambda v: _relayout(analytic, auto, module, v), in_dims=2, out_dims=2)
    V = torch.randn(B, analytic.dim, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    xa, Va = analytic.tangent(x, V, TrajectoryRNG(2, B))
    xb, Vb = auto.tangent(_relayout(analytic, auto, module, x), to_auto(V), TrajectoryRNG(2, B))
    assert torch.allclose(xb, _relayout(analytic, auto, module, xa), rtol=0, atol=1e-14)
    assert torch.allclose(Vb, to_auto(Va), rtol=0, atol=1e-12)


def _relayout(analytic, auto, module, x):
    state = analytic.unpack(x)
    if isinstance(module, nn.RNNBase):
        state = tuple(t.transpose(0, 1) for t in state) if isinstance(state, tuple) else state.transpose(0, 1)
    return auto.pack(state)


def test_a_cell_and_the_one_layer_module_with_its_weights_step_identically():
    cell = nn.GRUCell(3, 5)
    gru = nn.GRU(3, 5, num_layers=1)
    _set(gru, **{name + "_l0": p for name, p in cell.named_parameters()})
    inputs = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    a, b = tasks.from_module(cell, inputs), tasks.from_module(gru, inputs)
    x = a.sample_initial(4, TrajectoryRNG(0, 4))
    V = torch.randn(4, 5, 5, dtype=F64)
    for _ in range(5):
        (xa, Va), (xb, Vb) = a.tangent(x, V, TrajectoryRNG(1, 4)), b.tangent(x, V, TrajectoryRNG(1, 4))
        assert torch.equal(xa, xb) and torch.equal(Va, Vb)
        x, V = xa, Va


# -- batches, dtypes ------------------------------------------------------------------------------------
def test_a_batch_of_b_equals_b_single_runs():
    """Equal to round-off (one weight matrix times the batch: BLAS may round a batch of 3 and of 1
    differently).  The weights are seeded: with nearly degenerate exponents (torch.manual_seed(0) gives
    -0.2403, -0.2447) the frame's rotation inside their plane amplifies that round-off to 3e-8 per exponent."""
    torch.manual_seed(1)
    lstm = nn.LSTM(2, 3, num_layers=2)
    system = tasks.from_module(lstm, torch.randn(50, 2, generator=torch.Generator().manual_seed(0)), input_noise=0.1)
    qr = estimators.get("qr")
    full = qr.estimate(system, 100, transient=10, batch=3, seed=7)
    for b in range(3):
        one = qr.estimate(system, 100, transient=10, batch=1, seed=(7, b))
        assert np.allclose(one.per_trajectory[0], full.per_trajectory[b], rtol=0, atol=1e-12)
    # the drawn rows are rows of the table, trajectory by trajectory
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    draws = tasks.from_module(lstm, table)._noise(TrajectoryRNG(0, 64), torch.zeros(64, 12, dtype=F64))
    assert all(any(torch.equal(r, t.to(F64)) for t in table) for r in draws)
    assert len({tuple(r.tolist()) for r in draws}) == 3


def test_float32_runs_and_agrees_with_float64():
    gru = nn.GRU(2, 4, num_layers=2)
    system = tasks.from_module(gru, torch.randn(50, 2, generator=torch.Generator().manual_seed(0)))
    x32 = system.sample_initial(3, TrajectoryRNG(0, 3)).to(torch.float32)
    x1, V1 = system.tangent(x32, torch.eye(8).expand(3, 8, 8).contiguous(), TrajectoryRNG(1, 3))
    assert x1.dtype == V1.dtype == torch.float32
    qr = estimators.get("qr")
    r32 = qr.estimate(system, 300, transient=50, batch=2, seed=0, dtype=torch.float32)
    r64 = qr.estimate(system, 300, transient=50, batch=2, seed=0, dtype=F64)
    assert np.all(np.isfinite(r32.exponents)) and np.allclose(r32.exponents, r64.exponents, rtol=0, atol=1e-3)


# -- bad input ------------------------------------------------------------------------------------------
class NotAState(nn.Module):
    input_size, hidden_size = 2, 3

    def forward(self, u, h):
        return torch.cat([h, u], dim=1)  # wrong width


class ReturnsOutputAndState(nn.Module):
    input_size, hidden_size = 2, 3

    def forward(self, u, h):
        return u, h


def test_bad_input_is_refused_naming_the_argument():
    with pytest.raises(InvalidArgumentError, match="module.bidirectional.*backwards"):
        tasks.from_module(nn.GRU(2, 3, bidirectional=True), None)
    with pytest.raises(InvalidArgumentError, match="module.proj_size.*projection"):
        tasks.from_module(nn.LSTM(2, 4, proj_size=2), None)
    with pytest.raises(InvalidArgumentError, match="invalid inputs=.*input_size = 2"):
        tasks.from_module(nn.LSTM(2, 4), torch.zeros(10, 3))
    with pytest.raises(InvalidArgumentError, match="invalid inputs=.*input_size"):
        tasks.from_module(nn.GRUCell(2, 4), lambda g, b: g.normal(5))
    with pytest.raises(InvalidArgumentError, match="invalid inputs="):
        tasks.from_module(nn.GRUCell(2, 4), [[1.0, 2.0]])
    with pytest.raises(InvalidArgumentError, match="invalid module=.*forward returned a tensor of shape \\(3, 5\\)"):
        tasks.from_module(NotAState(), None)
    with pytest.raises(InvalidArgumentError, match="invalid module=.*returns the next state"):
        tasks.from_module(ReturnsOutputAndState(), None)
    with pytest.raises(InvalidArgumentError, match="invalid module="):
        tasks.from_module(lambda u, h: h, None)
    with pytest.raises(InvalidArgumentError, match="input_noise"):
        tasks.from_module(nn.RNNCell(2, 3), None, input_noise=-1.0)


# -- the registry's RNN tasks --------------------------------------------------------------------------
def _cell_driven_the_old_way(task_id):
    """(registry task, its sequence task, x' = cell(u, x) as the registry computed it before the rebuild on
    from_module: functional_call through the torch cell, u = task.draw, the tangent by autodiff, or for the
    tanh cell diag(1 - h'^2) (W_hh V))."""
    system = tasks.build(task_id)
    p = tasks.get(task_id).params
    task = sequence_task(p["task"], **p.get("task_params", {}))
    cell, params = system.module, {k: v.detach() for k, v in system.module.named_parameters()}

    def step(x, u):
        if isinstance(cell, nn.LSTMCell):
            H = x.shape[-1] // 2
            return torch.cat(torch.func.functional_call(cell, params, (u, (x[:, :H], x[:, H:]))), dim=-1)
        return torch.func.functional_call(cell, params, (u, x))
    old = (_OldTanhTangent if isinstance(cell, nn.RNNCell) else Map)(
        task_id, step, system.dim, noise=lambda g, x: task.draw(g, x.dtype), batch_invariant=False)
    old.W_hh = params["weight_hh"]
    return system, task, old


class _OldTanhTangent(Map):
    def _tangent(self, x, V, generator):
        h = self._f(x, self.draw_noise(generator, x))
        return h, (1.0 - h * h).unsqueeze(-1) * torch.matmul(self.W_hh, V)


REGISTRY_RNNS = [("rnn/gru-xor-h64-end-v1", nn.GRU), ("rnn/lstm-adding-h32-end-v1", nn.LSTM),
                 ("rnn/tanh-copy-h16-end-v1", nn.RNN), ("rnn/tanh-copyinput-h128-g2-untrained-v1", nn.RNN)]


@pytest.mark.parametrize("task_id, cls", REGISTRY_RNNS)
def test_registry_rnn_tasks_are_from_module_and_step_bit_for_bit_as_before(task_id, cls):
    """A registry RNN task is from_module on its torch cell: its steps equal the cell driven the old way and
    the one-layer torch.nn module with the same weights bit for bit, its analytic tangent equals autodiff
    through the cell to round-off, and its probe matches the committed reference's."""
    system, task, old = _cell_driven_the_old_way(task_id)
    assert isinstance(system, ModuleMap) and system.hand_written_tangent
    module = _set(cls(task.input_dim, system.hidden, dtype=F64),
                  **{name + "_l0": p for name, p in system.module.named_parameters()})
    layer = tasks.from_module(module, lambda g, b: task.draw(g), name=task_id)
    assert computed.probes_match(computed.probe(system), tasks.read(task_id)["probe"])
    x = system.sample_initial(4, TrajectoryRNG(0, 4))
    V = torch.randn(4, system.dim, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    for t in range(20):
        x1, V1 = system.tangent(x, V, TrajectoryRNG(5 + t, 4))
        x0, V0 = old.tangent(x, V, TrajectoryRNG(5 + t, 4))
        assert torch.equal(x1, x0) and torch.equal(layer.step(x, TrajectoryRNG(5 + t, 4)), x0)
        assert torch.allclose(V1, V0, rtol=0, atol=1e-12 * float(V0.abs().max()))
        x, V = x1, V1


@pytest.mark.parametrize("task_id, cls", REGISTRY_RNNS)
def test_registry_rnn_spectra_unchanged_by_the_rebuild(task_id, cls):
    """qr on the task against qr on the old path: bit for bit for the tanh cell (the same analytic tangent),
    within round-off for GRU/LSTM, whose autodiff tangent became analytic (measured 1.2e-15 over 200 steps,
    float64; bound 1e-12, i.e. ~4500 ulp of an exponent of order 1)."""
    system, _, old = _cell_driven_the_old_way(task_id)
    qr = estimators.get("qr")
    new, before = (qr.estimate(s, 200, transient=50, batch=3, k=4, seed=1) for s in (system, old))
    if cls is nn.RNN:
        assert np.array_equal(new.exponents, before.exponents)
    else:
        assert np.max(np.abs(new.exponents - before.exponents)) <= 1e-12
    two = estimators.get("two_trajectory")
    assert np.array_equal(two.estimate(system, 200, batch=2, seed=1).exponents,
                          two.estimate(old, 200, batch=2, seed=1).exponents)


def test_layers_in_training_mode_are_refused_and_fine_in_eval_mode():
    """Dropout in training mode draws masks from torch's global random state, so a step is not a function of
    the state (a black-box test got lambda_1 = 15.9, 15.8, 15.5 from one seed): refused by name, with .eval()
    the advice; in eval mode the cell runs and repeats itself. Dropout with p = 0, and an nn.GRU's own
    inter-layer dropout (which from_module never applies), are not refused."""
    class DropCell(nn.Module):
        hidden_size = 6

        def __init__(self, p=0.1):
            super().__init__()
            self.lin, self.drop = nn.Linear(8, 6), nn.Dropout(p)

        def forward(self, u, h):
            return torch.tanh(self.drop(self.lin(torch.cat([u, h], -1))))

    torch.manual_seed(0)
    with pytest.raises(InvalidArgumentError, match=r"module='drop \(Dropout\) in training mode'.*eval\(\)"):
        tasks.from_module(DropCell(), lambda g, b: g.normal(2))
    system = tasks.from_module(DropCell().eval(), lambda g, b: g.normal(2))
    runs = [estimators.get("two_trajectory").estimate(system, 50, batch=2, seed=3).exponents for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    tasks.from_module(DropCell(p=0.0), lambda g, b: g.normal(2))
    tasks.from_module(nn.GRU(2, 4, num_layers=2, dropout=0.3), None)


def test_a_module_on_the_meta_device_is_refused_when_built():
    """Parameters with shapes but no values: it built and failed only when estimated (Cannot copy out of meta
    tensor); now refused by name, with what to do."""
    with torch.device("meta"):
        gru = nn.GRU(2, 4)
    with pytest.raises(InvalidArgumentError, match=r"module='weight_ih_l0, .* on the meta device'"):
        tasks.from_module(gru, None)

import pandas as pd
import pytest
import torch
from torch import nn

from dleff import jit


def args(a, b, multiply):
    return torch.tensor([float(a)]), torch.tensor([float(b)]), torch.tensor([multiply])


def test_scripted_sum_takes_lists_of_any_length():
    sum_jit = jit.scripted_sum_jit()
    assert isinstance(sum_jit, torch.jit.ScriptFunction)
    xs = [torch.randn(3) for _ in range(4)]
    assert torch.allclose(sum_jit(xs), torch.stack(xs).sum(0))
    assert torch.equal(sum_jit(xs[:1]), xs[0])


def test_traced_function_and_module_match_eager():
    x, w, bias = torch.randn(10, 10), torch.randn(10, 100), torch.randn(100)
    assert torch.equal(jit.traced_matmul_add()(x, w, bias), x @ w + bias)
    net = jit.seed_net()
    assert torch.equal(jit.trace(net, torch.randn(10, 10))(x), net(x))


def test_script_inside_a_python_module_takes_any_list():
    net = jit.SumThenLinear()
    assert net([torch.randn(1), torch.randn(1)]).shape == (1,)
    assert net([torch.randn(1)]).shape == (1,)


def test_deprecation_is_shown_once_and_tracer_warnings_pass_through(capsys):
    jit._DEPRECATIONS_SHOWN.clear()
    with pytest.warns(torch.jit.TracerWarning, match="Python number"):
        jit.trace_with_quiz_example(jit.f_if)
    jit.trace_with_quiz_example(jit.f_where)
    shown = capsys.readouterr().out
    assert shown.count("`torch.jit.trace` is deprecated") == 1


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the warning has its own test above
def test_quiz_trace_freezes_the_branch_where_keeps_both():
    traced_if = jit.trace_with_quiz_example(jit.f_if)
    assert traced_if(*args(2, 3, True)).item() == 6
    assert traced_if(*args(2, 3, False)).item() == 6  # the `if` was decided while tracing
    traced_where = jit.trace_with_quiz_example(jit.f_where)
    assert traced_where(*args(2, 3, True)).item() == 6
    assert traced_where(*args(2, 3, False)).item() == 5


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_a_scripted_branch_survives_tracing():
    traced = jit.trace(jit.BranchInScript(), *jit.quiz_example())
    assert traced(*args(2, 3, True)).item() == 6
    assert traced(*args(2, 3, False)).item() == 5


def test_trace_keeps_the_mode_it_was_traced_in_script_follows_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 3)).eval()
    x = torch.randn(8, 10)
    traced = jit.trace(net, x)
    traced.train()
    assert torch.equal(traced(x), traced(x))  # still no dropout: eval was frozen in
    scripted = jit.script(net)
    scripted.train()
    assert not torch.equal(scripted(x), scripted(x))
    scripted.eval()
    assert torch.equal(scripted(x), net(x))


def test_compile_breaks_at_item_and_compiles_each_branch():
    torch._dynamo.reset()
    compiled, graphs = jit.compile_recording(jit.f_if, backend="eager")
    assert compiled(*args(2, 3, True)).item() == 6
    assert compiled(*args(2, 3, False)).item() == 5
    assert len(graphs) == 2
    assert "mul" in graphs[0].code and "add" in graphs[1].code


def test_export_takes_where_and_refuses_the_data_dependent_if():
    exported = jit.export(jit.f_where, *jit.quiz_example())
    assert exported.module()(*args(2, 3, False)).item() == 5
    with pytest.raises(Exception, match="data-dependent"):
        jit.export(jit.f_if, *jit.quiz_example())


def test_compare_compiled_training_reports_steps_and_compile_cost():
    torch._dynamo.reset()
    X, y = torch.randn(32, 6), torch.randint(0, 2, (32,))

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))

    report = jit.compare_compiled_training(make_model, X, y, min_run_time=0.05, backend="eager")
    assert list(report.steps.index) == ["eager", "compiled"]
    assert (report.steps["median_s"] > 0).all() and report.compile_seconds > 0
    ax = jit.plot_compile_payoff(report, mark_steps=50)
    eager_line, compiled_line = ax.get_lines()[:2]
    # The compiled line starts at the compile time: that is the price paid before the first step.
    assert compiled_line.get_ydata()[0] == pytest.approx(report.compile_seconds)
    assert eager_line.get_ydata()[0] == 0
    assert ax.get_lines()[2].get_xdata()[0] == 50


def test_compile_payoff_arithmetic():
    # Known numbers: eager 3 ms a step, compiled 1 ms, compiling 4 s -> pays off after 2,000 steps.
    steps = pd.DataFrame({"median_s": [0.003, 0.001]}, index=["eager", "compiled"])
    report = jit.CompileComparison(steps, compile_seconds=4.0)
    assert report.speedup == pytest.approx(3.0)
    assert report.total_seconds(100) == pytest.approx({"eager": 0.3, "compiled": 4.1})
    assert report.break_even_steps == pytest.approx(2000)
    slower = jit.CompileComparison(steps.iloc[::-1].set_axis(["eager", "compiled"]), compile_seconds=4.0)
    assert slower.speedup == pytest.approx(1 / 3) and slower.break_even_steps == float("inf")


def test_inductor_compiles_a_small_mlp_to_the_same_numbers():
    # The one test that generates code (several seconds cold): forward only, tiny model.
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    compiled, graphs = jit.compile_recording(net)
    assert torch.allclose(compiled(x), net(x), atol=1e-6)
    assert len(graphs) == 1

"""The registry (by name and by entry point), the load-time check and the run_plan fence."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint, EntryPoints
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

import strategies.registry as registry
from bot.config import ConfigError
from bot.config.policy import PolicyConfig
from bot.engine.policy import check_policy
from bot.events import Calm, OrderIntent, Portfolio
from strategies import (
    ENTRY_POINT_GROUP,
    Plan,
    PlanRejected,
    PluginError,
    StrategyContext,
    StrategyError,
    UnknownStrategyError,
    available,
    get_strategy,
    register,
    run_plan,
)

CTX = StrategyContext(Calm("all", 1), Portfolio(1, 0.0), {}, 1, "a")


class ProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    amount: float = 1.0


def _intent(leg: int = 0, reduce_only: bool = True, amount: float = 1.0) -> OrderIntent:
    return OrderIntent("paper", "BTCUSDT", "sell", "market", amount, reduce_only, leg=leg)


class FakeProbe:
    """A plugin as a fund would write it; loaded through a real EntryPoint below."""

    name: ClassVar[str] = "fake_probe"
    Params: ClassVar[type[BaseModel]] = ProbeParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        assert isinstance(params, ProbeParams)
        return Plan((_intent(amount=params.amount),), "probe")


class HaltImpostor(FakeProbe):
    name: ClassVar[str] = "halt"


class NoParams:
    name: ClassVar[str] = "no_params"
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        return Plan((), "")


class Sneaky:
    """Claims to reduce exposure, emits an opening order."""

    name: ClassVar[str] = "sneaky"
    Params: ClassVar[type[BaseModel]] = ProbeParams
    reduces_exposure: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Plan:
        return Plan((_intent(0), _intent(1, reduce_only=False)), "")


class Broken:
    name: ClassVar[str] = "broken"
    Params: ClassVar[type[BaseModel]] = ProbeParams
    reduces_exposure: ClassVar[bool] = False

    def __init__(self, legs: list[int] | None = None) -> None:
        self.legs = legs

    def plan(self, ctx: StrategyContext, params: BaseModel) -> Any:
        if self.legs is None:
            raise ZeroDivisionError("oops")
        if self.legs == []:
            return ["not a plan"]
        return Plan(tuple(_intent(leg) for leg in self.legs), "")


def _ep(name: str, attr: str, module: str = __name__) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attr}", group=ENTRY_POINT_GROUP)


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """Entry points the registry will see; the registry is reloaded clean afterwards."""
    found: list[EntryPoint] = []

    def fake_entry_points(*, group: str) -> EntryPoints:
        return EntryPoints(ep for ep in found if ep.group == group)

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    yield found
    monkeypatch.undo()
    registry.reload()


def test_builtins_by_name() -> None:
    assert {"reduce_exposure", "stop_loss", "hedge", "unhedge", "halt"} <= set(available())
    for name in available():
        cls = get_strategy(name)
        assert cls.name == name and cls.Params() is not None


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownStrategyError) as err:
        get_strategy("reduce_exposur")
    for name in available():
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)


def test_a_plugin_loads_through_its_entry_point(plugins: list[EntryPoint]) -> None:
    plugins.append(_ep("fake_probe", "FakeProbe"))
    registry.reload()
    assert get_strategy("fake_probe") is FakeProbe
    assert "fake_probe" in available()
    out = run_plan(get_strategy("fake_probe")(), CTX, {"amount": 2.5})
    assert out.intents[0].amount == 2.5


@pytest.mark.parametrize(
    ("ep_name", "attr", "module", "fix"),
    [
        ("no_params", "NoParams", __name__, "set `Params` to a pydantic BaseModel"),
        ("other_name", "FakeProbe", __name__, "name the entry point the same"),
        ("gone", "Gone", "tests.no_such_module", "check the module path"),
        ("halt", "HaltImpostor", __name__, "is already a strategy; rename it"),
    ],
)
def test_a_bad_plugin_says_what_to_fix(
    plugins: list[EntryPoint], ep_name: str, attr: str, module: str, fix: str
) -> None:
    plugins.append(_ep(ep_name, attr, module))
    with pytest.raises(PluginError, match="entry point") as err:
        registry.reload()
    assert fix in str(err.value)


def test_register_refuses_a_taken_name_and_a_bad_class() -> None:
    class Twin(FakeProbe):
        name: ClassVar[str] = "halt"

    with pytest.raises(PluginError, match="'halt' is taken"):
        register(Twin)
    with pytest.raises(PluginError, match="constructible with no arguments"):

        class NeedsArgs(FakeProbe):
            name: ClassVar[str] = "needs_args"

            def __init__(self, x: int) -> None: ...

        register(NeedsArgs)


def test_a_reducing_strategy_cannot_emit_an_opening_order() -> None:
    with pytest.raises(PlanRejected, match=r"leg 1 .* is not reduce-only"):
        run_plan(Sneaky(), CTX, {})


def test_run_plan_fences_failures_and_bad_plans() -> None:
    with pytest.raises(StrategyError, match="ZeroDivisionError: oops"):
        run_plan(Broken(), CTX, {})
    with pytest.raises(PlanRejected, match="not a Plan"):
        run_plan(Broken([]), CTX, {})
    with pytest.raises(PlanRejected, match="leg 1"):
        run_plan(Broken([1, 0]), CTX, {})
    with pytest.raises(StrategyError, match="invalid params"):
        run_plan(Broken([0]), CTX, {"amount": "lots"})


def test_policy_params_validate_as_the_strategy_model_with_the_path_in_the_file() -> None:
    # check_policy is what loading liqguard.yaml runs on every policy step's params.
    def policy(strategy: str, params: dict[str, Any]) -> PolicyConfig:
        return PolicyConfig.model_validate(
            {"levels": {2: [{"strategy": strategy, "params": params}]}, "calm": []}
        )

    model = check_policy(policy("reduce_exposure", {"fraction": 0.3}))["policy.levels.2[0]"].params
    assert model.model_dump()["fraction"] == 0.3
    with pytest.raises(ConfigError) as err:
        check_policy(policy("reduce_exposure", {"fraction": 3, "slicez": 2}))
    assert "(2 problem(s))" in str(err.value)
    assert "policy.levels.2[0].params.fraction: value 3" in str(err.value)
    assert "policy.levels.2[0].params.slicez: unknown parameter 'slicez'" in str(err.value)
    with pytest.raises(UnknownStrategyError):
        get_strategy("nope")
    with pytest.raises(ConfigError, match=r"policy\.levels\.2\[0\]\.strategy: value 'nope'"):
        check_policy(policy("nope", {}))

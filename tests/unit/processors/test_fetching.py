"""The lean fetch loop is faust's own but for the lines marked `# kaizen`."""

from __future__ import annotations

import inspect

import faust
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from kaizen.processors.config import ProcessorConfig
from kaizen.processors.fetching import LeanApp, LeanConsumer, LeanTransport


def _code_lines(function: object) -> list[str]:
    """The statements of a function's source: no comment lines, no indentation."""
    lines = (line.strip() for line in inspect.getsource(function).splitlines())  # type: ignore[arg-type]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_lean_loop_is_fausts_but_for_the_marked_lines() -> None:
    ours = [line for line in _code_lines(LeanConsumer._drain_messages) if "# kaizen" not in line]
    assert ours == _code_lines(Consumer._drain_messages), (
        "faust's Consumer._drain_messages changed: carry the change into processors/fetching.py")


def test_the_marked_lines_await_the_callback_only_while_the_flow_is_not_suspended() -> None:
    marked = [line for line in _code_lines(LeanConsumer._drain_messages) if "# kaizen" in line]
    assert marked == ["suspended = self.suspend_flow.is_set  # kaizen",
                      "if suspended():  # kaizen: faust's race only while suspended",
                      "else:  # kaizen",
                      "await callback(message)  # kaizen"]


def test_a_kafka_app_makes_lean_consumers_and_any_other_transport_is_fausts() -> None:
    lean = LeanApp("t-lean", broker="kafka://127.0.0.1:1")
    assert type(lean.transport) is LeanTransport and lean.transport.Consumer is LeanConsumer
    other = LeanApp("t-confluent", broker="confluent://127.0.0.1:1")
    assert not isinstance(other.transport, faust_aiokafka.Transport)
    assert type(faust.App("t-stock", broker="kafka://127.0.0.1:1").transport) is (
        faust_aiokafka.Transport)


def test_the_processors_are_lean_and_the_stock_baseline_is_not() -> None:
    from kaizen.processors.app import create_app, create_baseline_app

    config = ProcessorConfig(bootstrap="127.0.0.1:1")
    assert type(create_app(config)) is LeanApp
    assert type(create_baseline_app(config)) is faust.App
    assert type(create_baseline_app(config, lean=True)) is LeanApp

"""`kaizen backtest`: replay historical agent logs through the real pipeline, recalling before each
episode and right before each of its tool calls as the agent would have, and count the repeated
failures a relevant lesson would have covered (`run.run_backtest`). The matching rules
(`matching`), the in-flight plan (`plan`) and the figures (`tally`) are pure modules; `pipeline`
drives the real broker, processors, sinks and gate.
"""

"""`kaizen serve` and what it owns: the host (sink runner, processors child), the gate and live
monitor, the HTTP API, rebuild by replay, and the local stack commands' logic."""

"""The `make demo` world: drifting tools, a simulated agent fleet, and how they compare."""

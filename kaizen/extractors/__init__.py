"""Extractors that need the outside world (an LLM endpoint); the pure ones live in
`kaizen.processors.learning.extractors`."""

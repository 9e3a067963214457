"""The recall read model: the in-process index of each scope's active lessons, the embedder
that turns texts into vectors, and the prompt rendering of recalled lessons.

Fed by the sinks (experience and snapshot events), read by the service's recall handler and the
embedded fallback of `kaizen.recall`.
"""

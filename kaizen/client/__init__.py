"""The agent side: the Recorder wired from settings and the recall client.

This room is what the base install (`pip install kaizen-fleet`) needs: confluent-kafka, fastavro
and pydantic, never the server stack (faust, stores, embedder).
"""

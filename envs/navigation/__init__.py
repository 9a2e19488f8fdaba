"""MuJoCo first-person navigation suite: rooms, objects and language goals.

One module per task (its whole definition) plus the shared pieces: ``layout.py``
(room grids, shortest paths; no MuJoCo), ``scene.py`` (the compiled model and its
per-episode edits) and ``nav.py`` (the agent, ground truth and planner expert). The
physics model is ``assets/navigation/navigation.xml``.
"""

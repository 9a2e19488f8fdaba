"""MuJoCo manipulation suite: an arm with a parallel-jaw gripper on a table.

One module per task (its whole definition, expert included) plus its MJCF file in
``assets/manipulation/``; the shared arm, controller and cameras live in ``arm.py``.
"""

"""Agents and the ``vmalign`` command line.

Agents drive ``envs`` and score them with ``rewards``; neither of those
packages imports this one.
"""

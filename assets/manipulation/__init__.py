"""MJCF models of the manipulation suite: robot.xml plus one file per task."""

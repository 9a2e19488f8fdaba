"""MJCF model of the navigation suite: navigation.xml, the agent, lights and materials."""

"""Conversion workflows: the step protocol, the registry and one module per engine."""

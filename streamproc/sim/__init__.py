"""Scenarios, simulators and test data producers."""

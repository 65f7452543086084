"""Distributed mode: a rivetgreen host joins a Rivet Engine as an envoy (engine-envoy.md), and the engine places,
wakes, fails over and drains its actors."""

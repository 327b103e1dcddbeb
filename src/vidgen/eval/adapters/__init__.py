"""Adapters to external benchmarks (run in their own environments): export prompts and video layouts,
import result files into ``eval/<suite>/metrics.json`` with each benchmark's own aggregation."""

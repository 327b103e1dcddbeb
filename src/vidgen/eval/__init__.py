"""Evaluation during and after training: the callback, and metrics methods share."""

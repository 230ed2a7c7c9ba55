"""Cycle-level micro-models (numba where hot), memoised so the event run pays once per pattern."""

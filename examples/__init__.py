"""Worked examples of bringing your own architecture or population (docs/bring-your-own.md)."""

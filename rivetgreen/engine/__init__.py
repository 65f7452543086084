"""Placement: who starts, stops, wakes and destroys actors."""

"""The rivetgreen demo application."""

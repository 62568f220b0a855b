"""Turning conversations and documents into memory records."""

"""Registers every command module with the group (one import per command)."""

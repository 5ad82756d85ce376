"""Typer sub-commands kept out of cli.py, each registered there with one line."""

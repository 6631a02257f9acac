"""Command line (Typer + Rich): one module per command group; main.py assembles them."""

"""The built-in problems' networks (plain torch modules; the problems import them on first use)."""

"""Figures of a sweep, one module per figure, each returning a matplotlib Figure built from the
stage files and aggregate tables (nothing here imports Snakemake):

- `correlation_heatmap`, `metric_panels`, `seed_heatmap`, `landscape_profiles`: per experiment
  and landscape; `run_panel`: per run. Each has `from_inputs(inputs, settings, problem, title)`,
  the figure rule's call (scripts/plot_figures.py), and a function of the same name that draws
  from tables and dicts.
- `registry`: which figures the workflow draws (rules, captions, script sub-commands), plain
  data that the Snakefile imports at DAG time.
- `common` (saving, the loss scale, text, the figure settings resolved against a summary),
  `sweep_grid` (the value × seed layout and shared loss axis of seed_heatmap and
  landscape_profiles), `drawing` and `run_drawing` (the primitives).

This package imports none of its submodules, so `toposweep.figures.registry` loads without
matplotlib; import the submodule you need.
"""

"""toposweep: train -> hessian -> landscape -> topology -> aggregate -> figures, for every run.

Run `snakemake --cores all` (default config: config/config.yaml), or pass another sweep with
`--configfile config/paper/<name>.yaml`.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/hessian.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/topology.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


report: report_text()


# Small CPU steps run where snakemake runs (the login node on a cluster), not as Slurm jobs;
# the figure rules say so themselves (`localrule: True`, generated from the figure registry).
localrules:
    all,
    train_summary,
    summary,
    correlations,
    paper_figures,
    report_overview,


rule all:
    default_target: True
    input:
        all_tables(),
        all_topology(),
        rules.paper_figures.input,
        layout.report_overview(),
    message:
        "every result of the sweep (tables, figures, the report's landing page)"


check_profile()


onsuccess:
    report_flagged_runs()
    report_outputs()


onerror:
    report_failed_jobs(log)

"""Figures per experiment and landscape (PNG and PDF), each marked for the HTML report
(`snakemake --report results/report.html`)."""

# One rule per experiment figure of the registry (toposweep.figures.registry): a new figure is
# a module of toposweep.figures and an entry there, not a copy of these lines.
for figure in figure_registry.EXPERIMENT_FIGURES:

    rule:
        name:
            figure.rule
        input:
            table=layout.table(
                "{experiment}",
                "{landscape}",
                figure_registry.TABLE_FILES[figure.table],
            ),
            run_files=figure_run_files(figure.run_files),
        output:
            png=report(
                layout.figure("{experiment}", "{landscape}", figure.name, "png"),
                caption=f"../report/{figure.caption}",
                category="{experiment}",
                subcategory=f"{{landscape}}: {figure.subcategory}",
            ),
            pdf=layout.figure("{experiment}", "{landscape}", figure.name, "pdf"),
        log:
            layout.log("{experiment}", "figures", "{landscape}", figure.name),
        localrule: True
        conda:
            "../../envs/analysis.yaml"
        params:
            script=script("plot_figures.py"),
            # read here, while `figure` is this entry: the shell command is evaluated again
            # when the job runs, after the loop (it must not name `figure`)
            command=figure.command,
            table=figure.table,
            settings=stage_settings("figures"),
            problem=problem_info,
            title=figure_title(figure.title),
            swept=lambda wildcards: swept_description(wildcards.experiment),
        message:
            f"figure {figure.name} of {{wildcards.experiment}}/{{wildcards.landscape}}; log: {{log}}"
        shell:
            "{params.script} {params.command} --{params.table} {input.table}"
            " --settings {params.settings:q} --problem {params.problem:q} --title {params.title:q}"
            " --output {output.png} {output.pdf} > {log} 2>&1"


rule run_panel:
    """Every run's panel of one landscape in one job (one matplotlib start-up, not one per
    run: a 100-run sweep draws 100 panels on the login node in one process)."""
    input:
        all_run_panel_inputs,
    output:
        report(
            directory(layout.run_figures_dir("{experiment}", "{landscape}")),
            patterns=["{point}_seed~{seed}.png"],
            caption=f"../report/{figure_registry.RUN_PANEL.caption}",
            category="{experiment}",
            subcategory=f"{{landscape}}: {figure_registry.RUN_PANEL.subcategory}",
            labels=run_panel_labels,
        ),
    log:
        layout.log("{experiment}", "figures", "{landscape}", "runs"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        command=figure_registry.RUN_PANEL.command,
        settings=stage_settings("figures"),
        problem=problem_info,
        runs=run_panel_list,
        swept=lambda wildcards: swept_description(wildcards.experiment),
    message:
        "run panels of {wildcards.experiment}/{wildcards.landscape}; log: {log}"
    shell:
        "{params.script} {params.command} --experiment {wildcards.experiment}"
        " --landscape {wildcards.landscape} --runs {params.runs:q}"
        " --settings {params.settings:q} --problem {params.problem:q} > {log} 2>&1"


rule paper_figures:
    """Every experiment's tables and figures: `snakemake --cores all paper_figures
    --configfile config/paper/<sweep>.yaml` regenerates that paper's figures."""
    input:
        all_tables(),
        [path for experiment in EXPERIMENTS for path in experiment_figures(experiment)],
        layout.report_overview(),
    message:
        "every experiment's tables and figures, and the report's landing page"

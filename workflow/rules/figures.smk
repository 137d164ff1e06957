"""Figures per experiment (PNG and PDF), each marked for the HTML report
(`snakemake --report results/report.html`)."""


rule correlation_heatmap:
    input:
        correlations="results/{experiment}/correlations.csv",
    output:
        png=report(
            "results/{experiment}/figures/correlations.png",
            caption="../report/correlations.rst",
            category="{experiment}",
            subcategory="correlations",
        ),
        pdf="results/{experiment}/figures/correlations.pdf",
    log:
        "logs/{experiment}/figures/correlations.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        title=figure_title("correlations over finished runs"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "python {params.script} correlations --correlations {input.correlations}"
        " --settings {params.settings:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule metric_panels:
    input:
        summary="results/{experiment}/summary.parquet",
    output:
        png=report(
            "results/{experiment}/figures/metric_panels.png",
            caption="../report/metric_panels.rst",
            category="{experiment}",
            subcategory="metrics against the hyperparameter",
        ),
        pdf="results/{experiment}/figures/metric_panels.pdf",
    log:
        "logs/{experiment}/figures/metric_panels.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        title=figure_title("topology, test and Hessian metrics"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "python {params.script} panels --summary {input.summary}"
        " --settings {params.settings:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule seed_heatmap:
    input:
        summary="results/{experiment}/summary.parquet",
        profiles=lambda wildcards: run_files(wildcards.experiment, "profile.json"),
    output:
        png=report(
            "results/{experiment}/figures/seed_heatmap.png",
            caption="../report/seed_heatmap.rst",
            category="{experiment}",
            subcategory="hyperparameter × seed",
        ),
        pdf="results/{experiment}/figures/seed_heatmap.pdf",
    log:
        "logs/{experiment}/figures/seed_heatmap.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        title=figure_title("test metric and landscape profile per run"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "python {params.script} seeds --summary {input.summary} --results-dir results"
        " --settings {params.settings:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule landscape_profiles:
    input:
        summary="results/{experiment}/summary.parquet",
        # landscape.h5 for the title (dimension, directions: only its attributes are read)
        files=lambda wildcards: run_files(
            wildcards.experiment, "profile.json", "landscape.h5"
        ),
    output:
        png=report(
            "results/{experiment}/figures/profiles.png",
            caption="../report/landscape_profiles.rst",
            category="{experiment}",
            subcategory="landscape profiles",
        ),
        pdf="results/{experiment}/figures/profiles.pdf",
    log:
        "logs/{experiment}/figures/profiles.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        title=figure_title("the basins of every run"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "python {params.script} profiles --summary {input.summary} --results-dir results"
        " --settings {params.settings:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule run_panel:
    input:
        run_panel_inputs,
    output:
        png=report(
            "results/{experiment}/figures/runs/{point}_seed~{seed}.png",
            caption="../report/run_panel.rst",
            category="{experiment}",
            subcategory="per-run panels",
            labels={"run": "{point}, seed {seed}"},
        ),
        pdf="results/{experiment}/figures/runs/{point}_seed~{seed}.pdf",
    log:
        "logs/{experiment}/figures/runs/{point}_seed~{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        run_dir=RUN_DIR,
        title=lambda wildcards: f"{wildcards.experiment}: {wildcards.point}, seed {wildcards.seed}",
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "python {params.script} run --run-dir {params.run_dir}"
        " --settings {params.settings:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule paper_figures:
    """Every experiment's tables and figures: `snakemake --configfile config/paper/<sweep>.yaml
    --cores all paper_figures` regenerates that paper's figures."""
    input:
        expand("results/{experiment}/summary.csv", experiment=EXPERIMENTS),
        expand("results/{experiment}/correlations.csv", experiment=EXPERIMENTS),
        [path for experiment in EXPERIMENTS for path in experiment_figures(experiment)],

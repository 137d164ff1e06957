"""Figures per experiment and landscape (PNG and PDF), each marked for the HTML report
(`snakemake --report results/report.html`)."""


rule correlation_heatmap:
    input:
        correlations=layout.table("{experiment}", "{landscape}", "correlations.csv"),
    output:
        png=report(
            layout.figure("{experiment}", "{landscape}", "correlations", "png"),
            caption="../report/correlations.rst",
            category="{experiment}",
            subcategory="{landscape}: correlations",
        ),
        pdf=layout.figure("{experiment}", "{landscape}", "correlations", "pdf"),
    log:
        layout.log("{experiment}", "figures", "{landscape}", "correlations"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        problem=problem_info,
        title=figure_title("correlations over finished runs"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "{params.script} correlations --correlations {input.correlations}"
        " --settings {params.settings:q} --problem {params.problem:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule metric_panels:
    input:
        summary=layout.table("{experiment}", "{landscape}", "summary.parquet"),
    output:
        png=report(
            layout.figure("{experiment}", "{landscape}", "metric_panels", "png"),
            caption="../report/metric_panels.rst",
            category="{experiment}",
            subcategory="{landscape}: metrics against the hyperparameter",
        ),
        pdf=layout.figure("{experiment}", "{landscape}", "metric_panels", "pdf"),
    log:
        layout.log("{experiment}", "figures", "{landscape}", "metric_panels"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        problem=problem_info,
        title=figure_title("topology, test and Hessian metrics"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "{params.script} panels --summary {input.summary}"
        " --settings {params.settings:q} --problem {params.problem:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule seed_heatmap:
    input:
        summary=layout.table("{experiment}", "{landscape}", "summary.parquet"),
        profiles=lambda wildcards: [
            paths["profile"]
            for paths in run_files(wildcards.experiment, wildcards.landscape).values()
            if "profile" in paths
        ],
    output:
        png=report(
            layout.figure("{experiment}", "{landscape}", "seed_heatmap", "png"),
            caption="../report/seed_heatmap.rst",
            category="{experiment}",
            subcategory="{landscape}: hyperparameter × seed",
        ),
        pdf=layout.figure("{experiment}", "{landscape}", "seed_heatmap", "pdf"),
    log:
        layout.log("{experiment}", "figures", "{landscape}", "seed_heatmap"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        problem=problem_info,
        title=figure_title("test metric and landscape profile per run"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "{params.script} seeds --summary {input.summary}"
        " --settings {params.settings:q} --problem {params.problem:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule landscape_profiles:
    input:
        summary=layout.table("{experiment}", "{landscape}", "summary.parquet"),
        # landscape.h5 for the title (dimension, directions: only its attributes are read)
        files=lambda wildcards: [
            paths[key]
            for paths in run_files(wildcards.experiment, wildcards.landscape).values()
            for key in ("profile", "landscape")
            if key in paths
        ],
    output:
        png=report(
            layout.figure("{experiment}", "{landscape}", "profiles", "png"),
            caption="../report/landscape_profiles.rst",
            category="{experiment}",
            subcategory="{landscape}: landscape profiles",
        ),
        pdf=layout.figure("{experiment}", "{landscape}", "profiles", "pdf"),
    log:
        layout.log("{experiment}", "figures", "{landscape}", "profiles"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        problem=problem_info,
        title=figure_title("the basins of every run"),
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "{params.script} profiles --summary {input.summary}"
        " --settings {params.settings:q} --problem {params.problem:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule run_panel:
    input:
        unpack(run_panel_inputs),
    output:
        png=report(
            layout.run_figure(
                "{experiment}", "{landscape}", "{point}", "{seed}", "png"
            ),
            caption="../report/run_panel.rst",
            category="{experiment}",
            subcategory="{landscape}: per-run panels",
            labels=run_panel_labels,
        ),
        pdf=layout.run_figure("{experiment}", "{landscape}", "{point}", "{seed}", "pdf"),
    log:
        layout.log(
            "{experiment}", "figures", "{landscape}", "runs", "{point}_seed~{seed}"
        ),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("plot_figures.py"),
        settings=stage_settings("figures"),
        problem=problem_info,
        files=option_list,
        title=run_title,
        swept=lambda wildcards: swept_description(wildcards.experiment),
    shell:
        "{params.script} run {params.files} --settings {params.settings:q}"
        " --problem {params.problem:q} --title {params.title:q}"
        " --output {output.png} {output.pdf} > {log} 2>&1"


rule paper_figures:
    """Every experiment's tables and figures: `snakemake --cores all paper_figures
    --configfile config/paper/<sweep>.yaml` regenerates that paper's figures."""
    input:
        all_tables(),
        [path for experiment in EXPERIMENTS for path in experiment_figures(experiment)],

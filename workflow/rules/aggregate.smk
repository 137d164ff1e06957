"""Aggregation: per experiment, one summary row per run and the correlation table."""


rule summary:
    input:
        files=lambda wildcards: run_files(
            wildcards.experiment,
            "train_metrics.json",
            "hessian.json",
            "landscape.h5",
            "topology.json",
        ),
    output:
        csv="results/{experiment}/summary.csv",
        parquet="results/{experiment}/summary.parquet",
    log:
        "logs/{experiment}/summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("aggregate.py"),
        runs=runs_description,
    shell:
        "python {params.script} summary --runs {params.runs:q} --results-dir results"
        " --csv {output.csv} --parquet {output.parquet} > {log} 2>&1"


rule correlations:
    input:
        summary="results/{experiment}/summary.parquet",
    output:
        "results/{experiment}/correlations.csv",
    log:
        "logs/{experiment}/correlations.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("aggregate.py"),
        settings=stage_settings("aggregate"),
    shell:
        "python {params.script} correlations --summary {input.summary}"
        " --settings {params.settings:q} --output {output} > {log} 2>&1"

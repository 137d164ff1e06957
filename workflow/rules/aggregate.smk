"""Aggregation: per experiment and landscape, one summary row per run and the correlation table."""


rule summary:
    input:
        summary_inputs,
    output:
        csv=layout.table("{experiment}", "{landscape}", "summary.csv"),
        parquet=layout.table("{experiment}", "{landscape}", "summary.parquet"),
    log:
        layout.log("{experiment}", "{landscape}", "summary"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("aggregate.py"),
        runs=runs_description,
    message:
        "summary of {wildcards.experiment}/{wildcards.landscape}; log: {log}"
    shell:
        "{params.script} summary --runs {params.runs:q}"
        " --csv {output.csv} --parquet {output.parquet} > {log} 2>&1"


rule correlations:
    input:
        summary=layout.table("{experiment}", "{landscape}", "summary.parquet"),
    output:
        layout.table("{experiment}", "{landscape}", "correlations.csv"),
    log:
        layout.log("{experiment}", "{landscape}", "correlations"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("aggregate.py"),
        settings=stage_settings("aggregate"),
    message:
        "correlations of {wildcards.experiment}/{wildcards.landscape}; log: {log}"
    shell:
        "{params.script} correlations --summary {input.summary}"
        " --settings {params.settings:q} --output {output} > {log} 2>&1"

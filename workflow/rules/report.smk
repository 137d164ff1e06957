"""The HTML report (`snakemake --report results/report.html`): its landing page says what was
swept, shows every landscape's summary table and its headline correlations."""


rule report_overview:
    input:
        all_tables(),
    output:
        layout.report_overview(),
    log:
        layout.log("report_overview"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("report_overview.py"),
        sections=overview_sections,
    message:
        "the report's landing page; log: {log}"
    shell:
        "{params.script} --sections {params.sections:q} --output {output} > {log} 2>&1"

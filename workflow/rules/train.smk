"""Training stage: one job per run, then a per-experiment table."""


rule train:
    output:
        checkpoint=f"{RUN_DIR}/checkpoint.pt",
        metrics=f"{RUN_DIR}/train_metrics.json",
        curve=f"{RUN_DIR}/curve.csv",
        predictions=f"{RUN_DIR}/predictions.npz",
    log:
        "logs/{experiment}/{point}/seed~{seed}/train.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        script=script("train.py"),
        run=run_json,
        out_dir=subpath(output.metrics, parent=True),
    shell:
        "python {params.script} --run {params.run:q} --out-dir {params.out_dir}"
        " --threads {threads} > {log} 2>&1"


rule train_summary:
    input:
        metrics=lambda wildcards: expand(
            "results/{run}/train_metrics.json",
            run=experiment_runs(wildcards.experiment),
        ),
    output:
        "results/{experiment}/train_summary.csv",
    log:
        "logs/{experiment}/train_summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("train_summary.py"),
    shell:
        "python {params.script} --output {output} {input.metrics} > {log} 2>&1"

"""Training stage: one job per run, then a per-experiment table."""


rule train:
    output:
        **layout.outputs(layout.TrainFiles, RUN_DIR),
    log:
        layout.log(RUN_LOG, "train"),
    group:
        RUN_GROUP
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=run_gpus,
        qos=job_qos,
    params:
        script=script("train.py"),
        run=run_json,
    message:
        "train {wildcards.experiment}/{wildcards.point}/seed~{wildcards.seed}; log: {log}"
    shell:
        "{params.script} --run {params.run:q} --checkpoint {output.checkpoint}"
        " --metrics {output.metrics} --curve {output.curve}"
        " --predictions {output.predictions} --trajectory {output.trajectory}"
        " --threads {threads} > {log} 2>&1"


rule train_summary:
    input:
        metrics=lambda wildcards: [
            str(
                layout.TrainFiles.in_dir(
                    layout.run_dir(r.experiment, r.point, r.seed)
                ).metrics
            )
            for r in experiment_runs(wildcards.experiment)
        ],
    output:
        layout.train_summary("{experiment}"),
    log:
        layout.log("{experiment}", "train_summary"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("train_summary.py"),
    message:
        "training table of {wildcards.experiment}; log: {log}"
    shell:
        "{params.script} --output {output} {input.metrics} > {log} 2>&1"

"""Hessian stage: top eigenpairs, trace and spectral density per trained run."""


rule hessian:
    input:
        checkpoint=str(layout.TrainFiles.in_dir(RUN_DIR).checkpoint),
        metrics=str(layout.TrainFiles.in_dir(RUN_DIR).metrics),
    output:
        **layout.outputs(layout.HessianFiles, RUN_DIR),
    log:
        layout.log(RUN_LOG, "hessian"),
    group:
        RUN_GROUP
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        gpu=run_gpus,
        qos=job_qos,
    params:
        script=script("hessian.py"),
        settings=stage_settings("hessian"),
        run=run_json,
    message:
        "Hessian of {wildcards.experiment}/{wildcards.point}/seed~{wildcards.seed}; log: {log}"
    shell:
        "{params.script} --checkpoint {input.checkpoint} --train-metrics {input.metrics}"
        " --run {params.run:q} --hessian {output.hessian} --eigenvectors {output.eigenvectors}"
        " --density {output.density} --settings {params.settings:q} --threads {threads}"
        " > {log} 2>&1"

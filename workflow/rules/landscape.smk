"""Landscape stage: the loss on a grid around the trained weights, shared by MPI ranks; one
job per named landscape of a run."""


rule landscape:
    input:
        unpack(landscape_inputs),
    output:
        landscape=f"{LANDSCAPE_DIR}/{layout.LANDSCAPE}",
    log:
        layout.log(RUN_LOG, "{landscape}", "landscape"),
    group:
        lambda wildcards: landscape_job(wildcards).group
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mpi=lambda wildcards: landscape_job(wildcards).mpi,
        tasks=lambda wildcards: landscape_job(wildcards).tasks,
        gpu=lambda wildcards: landscape_job(wildcards).gpus,
        runtime=lambda wildcards: landscape_job(wildcards).runtime,
        qos=lambda wildcards: landscape_job(wildcards).qos,
    params:
        command=landscape_command,
        settings=landscape_settings,
        run=run_json,
        directions=lambda wildcards, input: " ".join(
            f"--{key} {input[key]}"
            for key in ("eigenvectors", "trajectory")
            if key in input.keys()
        ),
    message:
        "landscape {wildcards.landscape} of {wildcards.experiment}/{wildcards.point}/seed~{wildcards.seed}; log: {log}"
    shell:
        "{params.command}"
        " --checkpoint {input.checkpoint} --output {output.landscape}"
        " --train-metrics {input.train_metrics} --settings {params.settings:q}"
        " --run {params.run:q} {params.directions}"
        " --threads {threads} > {log} 2>&1"


rule landscape_vti:
    input:
        landscape=f"{LANDSCAPE_DIR}/{layout.LANDSCAPE}",
    output:
        vti=f"{LANDSCAPE_DIR}/{layout.LANDSCAPE_VTI}",
    log:
        layout.log(RUN_LOG, "{landscape}", "landscape_vti"),
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("export_vti.py"),
    message:
        "VTI export of {input}; log: {log}"
    shell:
        "{params.script} {input.landscape} {output.vti} > {log} 2>&1"

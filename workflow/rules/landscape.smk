"""Landscape stage: the loss on a grid around the trained weights, shared by MPI ranks."""


rule landscape:
    input:
        unpack(landscape_inputs),
    output:
        landscape=f"{RUN_DIR}/landscape.h5",
    log:
        "logs/{experiment}/{point}/seed~{seed}/landscape.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mpi="mpiexec",
        tasks=1,
    params:
        script=script("sample_landscape.py"),
        settings=stage_settings("landscape"),
        problem=lambda wildcards: EXPERIMENT_CONFIG[wildcards.experiment]["problem"],
        eigenvectors=lambda wildcards, input: (
            f"--eigenvectors {input.eigenvectors}"
            if "eigenvectors" in input.keys()
            else ""
        ),
    shell:
        "{resources.mpi} -n {resources.tasks} python -m mpi4py {params.script}"
        " --checkpoint {input.checkpoint} --output {output.landscape}"
        " --settings {params.settings:q} --problem {params.problem} {params.eigenvectors}"
        " --threads {threads} > {log} 2>&1"


rule landscape_vti:
    input:
        landscape=f"{RUN_DIR}/landscape.h5",
    output:
        vti=f"{RUN_DIR}/landscape.vti",
    log:
        "logs/{experiment}/{point}/seed~{seed}/landscape_vti.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("export_vti.py"),
    shell:
        "python {params.script} {input.landscape} {output.vti} > {log} 2>&1"

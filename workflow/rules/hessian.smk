"""Hessian stage: top eigenpairs, trace and spectral density per trained run."""


rule hessian:
    input:
        checkpoint=f"{RUN_DIR}/checkpoint.pt",
        metrics=f"{RUN_DIR}/train_metrics.json",
    output:
        hessian=f"{RUN_DIR}/hessian.json",
        eigenvectors=f"{RUN_DIR}/eigenvectors.pt",
        density=f"{RUN_DIR}/density.csv",
    log:
        "logs/{experiment}/{point}/seed~{seed}/hessian.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        script=script("hessian.py"),
        settings=stage_settings("hessian"),
        out_dir=subpath(output.hessian, parent=True),
    shell:
        "python {params.script} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"

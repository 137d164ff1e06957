"""Topology stage: merge tree, persistence diagram, metrics and landscape profile per landscape."""


rule topology:
    input:
        landscape=f"{RUN_DIR}/landscape.h5",
    output:
        topology=f"{RUN_DIR}/topology.json",
        persistence=f"{RUN_DIR}/persistence.csv",
        merge_tree=f"{RUN_DIR}/merge_tree.json",
        profile=f"{RUN_DIR}/profile.json",
    log:
        "logs/{experiment}/{point}/seed~{seed}/topology.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        script=script("topology.py"),
        settings=stage_settings("topology"),
        out_dir=subpath(output.topology, parent=True),
    shell:
        "python {params.script} --landscape {input.landscape} --out-dir {params.out_dir}"
        " --settings {params.settings:q} > {log} 2>&1"

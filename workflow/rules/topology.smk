"""Topology stage: merge tree, persistence diagram, metrics and landscape profile per landscape."""


rule topology:
    input:
        landscape=f"{LANDSCAPE_DIR}/{layout.LANDSCAPE}",
    output:
        **layout.outputs(layout.TopologyFiles, LANDSCAPE_DIR),
    log:
        layout.log(RUN_LOG, "{landscape}", "topology"),
    group:
        lambda wildcards: landscape_job(wildcards).topology_group
    conda:
        "../../envs/analysis.yaml"
    resources:
        qos=job_qos,
    params:
        script=script("topology.py"),
        settings=stage_settings("topology"),
    message:
        "topology of landscape {wildcards.landscape} of {wildcards.experiment}/{wildcards.point}/seed~{wildcards.seed}; log: {log}"
    shell:
        "{params.script} --landscape {input.landscape} --topology {output.topology}"
        " --persistence {output.persistence} --merge-tree {output.merge_tree}"
        " --profile {output.profile} --settings {params.settings:q} > {log} 2>&1"

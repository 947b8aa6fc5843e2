# Data: the synthetic demo set (generated) and one manifest per data set (publisher layout).


rule generate_demo:
    output:
        directory("resources/{dataset}/raw"),
    log:
        LOGS["generate_demo"],
    localrule: True
    conda:
        "../envs/fer.yaml"
    params:
        seed=config["demo"]["seed"],
        subjects=config["demo"]["subjects"],
        per_class=config["demo"]["images_per_class"],
        test_subjects=config["demo"]["test_subjects"],
        size=config["demo"]["size"],
    shell:
        "fer --log {log} demo --out {output} --seed {params.seed} --subjects {params.subjects}"
        " --images-per-class {params.per_class} --test-subjects {params.test_subjects}"
        " --size {params.size}"


rule build_manifest:
    input:
        manifest_inputs,
    output:
        manifest="resources/{dataset}/manifest.csv",
        summary="resources/{dataset}/manifest.summary.json",
    log:
        LOGS["build_manifest"],
    localrule: True
    conda:
        "../envs/fer.yaml"
    params:
        adapter=ds_param("adapter"),
        root=ds_param("root"),
        options=ds_param("options"),
        val_fraction=ds_param("val_fraction"),
        kfold=ds_param("kfold"),
        seed=ds_param("seed"),
    shell:
        "fer --log {log} manifest --dataset {wildcards.dataset} --adapter {params.adapter}"
        " --root {params.root:q} --options {params.options:q}"
        " --val-fraction {params.val_fraction} {params.kfold} --seed {params.seed}"
        " --out {output.manifest}"

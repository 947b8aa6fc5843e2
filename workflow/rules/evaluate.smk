# Evaluation: one result JSON per table cell (trained set x target x arch).


rule evaluate_cell:
    input:
        unpack(evaluate_inputs),
    output:
        "results/{dataset}/{target}_{arch}.json",
    log:
        "logs/evaluate_cell/{dataset}/{target}_{arch}.log",
    benchmark:
        "benchmarks/evaluate_cell/{dataset}/{target}_{arch}.tsv"
    conda:
        "../envs/fer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_mb_for(3000, 5),
        runtime=runtime_for(10, 1),
    params:
        prepared=prepared_dir,
        within=within_flag,
        protocol=config["evaluate"]["protocol"],
        w_roi=config["evaluate"]["fusion_roi"],
        w_global=config["evaluate"]["fusion_global"],
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["evaluate"]["seed"],
        batch_size=config["evaluate"]["batch_size"],
        config_hash=evaluate_hash,
    shell:
        "fer --log {log} evaluate --dataset {wildcards.dataset} --target {wildcards.target}"
        " --arch {wildcards.arch} --prepared {params.prepared}"
        " --global-ckpt {input.global_ckpt} --roi-ckpt {input.roi_ckpt} {params.within}"
        " --protocol {params.protocol}"
        " --fusion-weights roi={params.w_roi},global={params.w_global}"
        " --bootstrap {params.bootstrap} --seed {params.seed} --batch-size {params.batch_size}"
        " --config-hash {params.config_hash} --out {output}"

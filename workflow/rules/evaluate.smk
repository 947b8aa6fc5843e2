# Evaluation: both models run once per (trained set, target[, seed]) into a prediction record;
# every table cell (trained set x target x arch) is scored from the records, without torch.


rule predict_target:
    input:
        unpack(predict_inputs),
    output:
        "results/{dataset}/predictions/{target}.npz",
    log:
        "logs/predict_target/{dataset}/{target}.log",
    benchmark:
        "benchmarks/predict_target/{dataset}/{target}.tsv"
    conda:
        "../envs/fer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_mb_for(3000, 5),
        runtime=runtime_for(10, 1),
    params:
        prepared=prepared_dir,
        target=lambda wildcards: getattr(wildcards, "target", wildcards.dataset),
        rows=infer_rows,
        protocol=config["evaluate"]["protocol"],
        batch_size=config["evaluate"]["batch_size"],
    shell:
        "fer --log {log} infer --dataset {wildcards.dataset} --target {params.target}"
        " --prepared {params.prepared} --global-ckpt {input.global_ckpt}"
        " --roi-ckpt {input.roi_ckpt} {params.rows} --protocol {params.protocol}"
        " --batch-size {params.batch_size} --no-progress --out {output}"


# The trained set's validation rows (what the fused weight is chosen on) and replicates.
use rule predict_target as predict_validation with:
    output:
        "results/{dataset}/predictions/validation.npz",
    log:
        "logs/predict_validation/{dataset}.log",
    benchmark:
        "benchmarks/predict_validation/{dataset}.tsv"


use rule predict_target as predict_target_seed with:
    output:
        "results/{dataset}/seed{seed}/predictions/{target}.npz",
    log:
        "logs/predict_target/{dataset}/seed{seed}/{target}.log",
    benchmark:
        "benchmarks/predict_target/{dataset}/seed{seed}/{target}.tsv"


use rule predict_target as predict_validation_seed with:
    output:
        "results/{dataset}/seed{seed}/predictions/validation.npz",
    log:
        "logs/predict_validation/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/predict_validation/{dataset}/seed{seed}.tsv"


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
    resources:
        mem_mb=mem_mb_for(1000, 2),
        runtime=runtime_for(5, 0.2),
    params:
        validation=validation_flag,
        protocol=config["evaluate"]["protocol"],
        w_roi=config["evaluate"]["fusion_roi"],
        w_global=config["evaluate"]["fusion_global"],
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["evaluate"]["seed"],
        config_hash=evaluate_hash,
    shell:
        "fer --log {log} evaluate --dataset {wildcards.dataset} --target {wildcards.target}"
        " --arch {wildcards.arch} --predictions {input.predictions} {params.validation}"
        " --protocol {params.protocol}"
        " --fusion-weights roi={params.w_roi},global={params.w_global}"
        " --bootstrap {params.bootstrap} --seed {params.seed}"
        " --config-hash {params.config_hash} --out {output}"

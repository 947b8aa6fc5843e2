# Evaluation: both models run once per (trained set, replicate, target) into a prediction
# record, and once over the trained set's validation rows (target `validation`: what the fused
# weight is chosen on); every table cell (trained set x target x arch) is scored from the
# records, without torch.


rule infer_record:
    input:
        unpack(infer_inputs),
    output:
        RECORD,
    log:
        LOGS["infer_record"],
    benchmark:
        BENCHMARKS["infer_record"]
    conda:
        "../envs/fer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_mb_for(3000, 5),
        runtime=runtime_for(10, 1),
    params:
        prepared=prepared_dir,
        target=scored_set,
        rows=infer_rows,
        protocol=config["evaluate"]["protocol"],
        batch_size=config["evaluate"]["batch_size"],
    shell:
        "fer --log {log} infer --dataset {wildcards.dataset} --target {params.target}"
        " --prepared {params.prepared} --global-ckpt {input.global_ckpt}"
        " --roi-ckpt {input.roi_ckpt} {params.rows} --protocol {params.protocol}"
        " --batch-size {params.batch_size} --no-progress --out {output}"


rule evaluate_cell:
    input:
        unpack(evaluate_inputs),
    output:
        RESULT,
    log:
        LOGS["evaluate_cell"],
    benchmark:
        BENCHMARKS["evaluate_cell"]
    conda:
        "../envs/fer.yaml"
    resources:
        mem_mb=mem_mb_for(1000, 2),
        runtime=runtime_for(5, 0.2),
    params:
        validation=validation_flag,
        protocol=config["evaluate"]["protocol"],
        fusion=str(FUSION),
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["evaluate"]["seed"],
        config_hash=evaluate_hash,
    shell:
        "fer --log {log} evaluate --dataset {wildcards.dataset} --target {wildcards.target}"
        " --arch {wildcards.arch} --predictions {input.predictions} {params.validation}"
        " --protocol {params.protocol} --fusion-weights {params.fusion}"
        " --bootstrap {params.bootstrap} --seed {params.seed}"
        " --config-hash {params.config_hash} --out {output}"

# Training: the Global Net and the Global-ROI Net, one trainer, recipes from config; or the
# authors' checkpoint imported instead (a recipe's `reference:`). One rule for every model:
# `{replicate}` is '' or 'seed<s>/' (config `seeds`), `{fold}` '' or '.fold<k>' (k-fold sets).


rule train_model:
    input:
        unpack(model_inputs),
    output:
        ckpt=CHECKPOINT,
        history=HISTORY,
        run=RUN,
    log:
        LOGS["train_model"],
    benchmark:
        BENCHMARKS["train_model"]
    conda:
        "../envs/fer.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=mem_mb_for(4000, 10),
        runtime=train_runtime,  # from the recipe: epochs x images x input sizes
    params:
        job=model_job,  # fer train, or fer import-reference for the authors' checkpoint
    shell:
        "fer --log {log} {params.job} --threads {threads} --out {output.ckpt}"


# A trained pair as one predictor: fusion.json (the fused logits' weights, both checkpoints'
# sha256) in its models folder, where `fer predict --models` and `fer export` find it.
rule pair_models:
    input:
        pair_inputs,
    output:
        FUSION_JSON,
    log:
        LOGS["pair_models"],
    localrule: True
    conda:
        "../envs/fer.yaml"
    params:
        folder=models_folder,
        fusion=str(FUSION),
    shell:
        "fer --log {log} pair --models {params.folder} --fusion-weights {params.fusion}"
        " --source 'workflow config: evaluate.fusion_roi, evaluate.fusion_global'"

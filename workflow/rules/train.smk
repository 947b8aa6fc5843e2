# Training: the Global Net and the Global-ROI Net, one trainer, recipes from config; or the
# authors' checkpoint imported instead (a recipe's `reference:`).


rule train_model:
    input:
        unpack(model_inputs),
    output:
        ckpt="models/{dataset}/{model}.pt",
        history="models/{dataset}/{model}.history.csv",
        run="models/{dataset}/{model}.run.json",
    log:
        "logs/train_model/{dataset}/{model}.log",
    benchmark:
        "benchmarks/train_model/{dataset}/{model}.tsv"
    conda:
        "../envs/fer.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=mem_mb_for(4000, 10),
        runtime=runtime_for(30, 10),
    params:
        job=model_job,  # fer train, or fer import-reference for the authors' checkpoint
    shell:
        "fer --log {log} {params.job} --threads {threads} --out {output.ckpt}"


# k-fold data sets (CK+): one model per held-out fold, otherwise the same job.
use rule train_model as train_fold with:
    output:
        ckpt="models/{dataset}/{model}.fold{fold}.pt",
        history="models/{dataset}/{model}.fold{fold}.history.csv",
        run="models/{dataset}/{model}.fold{fold}.run.json",
    log:
        "logs/train_fold/{dataset}/{model}.fold{fold}.log",
    benchmark:
        "benchmarks/train_fold/{dataset}/{model}.fold{fold}.tsv"


# Replicate seeds (config `seeds`): the same jobs, one folder per seed.
use rule train_model as train_model_seed with:
    output:
        ckpt="models/{dataset}/seed{seed}/{model}.pt",
        history="models/{dataset}/seed{seed}/{model}.history.csv",
        run="models/{dataset}/seed{seed}/{model}.run.json",
    log:
        "logs/train_model/{dataset}/seed{seed}/{model}.log",
    benchmark:
        "benchmarks/train_model_seed/{dataset}/seed{seed}/{model}.tsv"


use rule train_model as train_fold_seed with:
    output:
        ckpt="models/{dataset}/seed{seed}/{model}.fold{fold}.pt",
        history="models/{dataset}/seed{seed}/{model}.fold{fold}.history.csv",
        run="models/{dataset}/seed{seed}/{model}.fold{fold}.run.json",
    log:
        "logs/train_fold/{dataset}/seed{seed}/{model}.fold{fold}.log",
    benchmark:
        "benchmarks/train_fold_seed/{dataset}/seed{seed}/{model}.fold{fold}.tsv"


# A trained pair as one predictor: fusion.json (the fused logits' weights, both checkpoints'
# sha256) in its models folder, where `fer predict --models` and `fer export` find it.
rule pair_models:
    input:
        pair_inputs,
    output:
        "models/{dataset}/fusion.json",
    log:
        "logs/pair_models/{dataset}.log",
    localrule: True
    conda:
        "../envs/fer.yaml"
    params:
        folder=models_folder,
        weights=lambda wildcards: (
            f"roi={config['evaluate']['fusion_roi']},"
            f"global={config['evaluate']['fusion_global']}"
        ),
    shell:
        "fer --log {log} pair --models {params.folder} --fusion-weights {params.weights}"
        " --source 'workflow config: evaluate.fusion_roi, evaluate.fusion_global'"


use rule pair_models as pair_models_seed with:
    output:
        "models/{dataset}/seed{seed}/fusion.json",
    log:
        "logs/pair_models/{dataset}/seed{seed}.log",

# Preprocessing: detection, 68-point alignment and eye/nose/mouth crops into prepared arrays.


rule prepare_faces:
    input:
        manifest="resources/{dataset}/manifest.csv",
        summary="resources/{dataset}/manifest.summary.json",
    output:
        index=f"{PREPARED}/index.csv",
        faces=f"{PREPARED}/faces.npy",
        eye=f"{PREPARED}/eye.npy",
        nose=f"{PREPARED}/nose.npy",
        mouth=f"{PREPARED}/mouth.npy",
        landmarks=f"{PREPARED}/landmarks.npy",
        params=f"{PREPARED}/params.json",
        summary=f"{PREPARED}/summary.json",
        sheet=report(
            f"{PREPARED}/contact_sheet.png",
            caption="../report/contact_sheet.rst",
            category="Preprocessing",
        ),
    log:
        LOGS["prepare_faces"],
    benchmark:
        BENCHMARKS["prepare_faces"]
    conda:
        "../envs/fer.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=mem_mb_for(2000, 20),
        runtime=runtime_for(10, 1),
    params:
        root=ds_param("root"),
        detector=ds_param("detector"),
        min_face=ds_param("min_face"),
        chip_size=config["preprocess"]["chip_size"],
        crop_size=config["preprocess"]["crop_size"],
        padding=config["preprocess"]["padding"],
        batch_size=config["preprocess"]["batch_size"],
        keep_original="--keep-original" if config["preprocess"]["keep_original"] else "",
        max_pixels=config["preprocess"]["max_pixels"],
        out=prepared_dir,
    shell:
        "fer --log {log} prepare --manifest {input.manifest} --root {params.root:q} --out {params.out}"
        " --detector {params.detector} --min-face {params.min_face} --chip-size {params.chip_size}"
        " --crop-size {params.crop_size} --padding {params.padding}"
        " --batch-size {params.batch_size} --max-pixels {params.max_pixels} --workers {threads} {params.keep_original}"

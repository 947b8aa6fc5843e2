# Report: one self-contained HTML page of every accuracy table.


rule render_report:
    input:
        results=all_results,
        histories=histories,
        summaries=prepared_summaries,
        predictors=predictors,  # every pair's fusion.json: each ready for fer predict
    output:
        report(
            REPORT,
            caption="../report/all.rst",
            category="Report",
        ),
    log:
        LOGS["render_report"],
    localrule: True
    conda:
        "../envs/fer.yaml"
    params:
        cells=cells_json(),
        config=json.dumps(config, sort_keys=True),
        title=config["title"],
        benchmarks=expected_benchmarks(),
    shell:
        "fer --log {log} report --cells {params.cells:q} --histories {input.histories}"
        " --prepared-summaries {input.summaries} --benchmarks $(ls {params.benchmarks} 2>/dev/null)"
        ' --config {params.config:q} --title {params.title:q} --command "$FER_COMMAND"'
        " --out {output}"


note_a_report_without_its_inputs()

"""Rows of the Serving dashboard on the model's answers (DESIGN.md section 15): how many fail
the response checks, by model and check, and what the judge scores them, by rubric."""

from __future__ import annotations

from dashboards.builder.model import Panel, Row, Target, heatmap, stat, timeseries
from dashboards.builder.promql import HOST, RANGE, SERVING, increase, quantile, rate, zero_filled_ratio

CHECKS = "infermeter_response_checks_total"
FAIL = 'result="fail"'
JUDGED = 'result=~"pass|fail"'
# The judge's series carry the model but not the endpoint.
JUDGE = HOST + ',model=~"$model"'
SCORE = "infermeter_eval_score"


def checks() -> list[Panel | Row]:
    by = "model, check"
    failed_rate = f"sum by ({by}) ({rate(CHECKS, SERVING, FAIL)})"
    judged_rate = f"sum by ({by}) ({rate(CHECKS, SERVING, JUDGED)})"
    failed_range = f"sum by (check) ({increase(CHECKS, SERVING, FAIL)})"
    judged_range = f"sum by (check) ({increase(CHECKS, SERVING, JUDGED)})"
    return [
        Row("Answer checks"),
        stat("Failed checks by check", f"Share of checked answers over the dashboard's time range ({RANGE}) that "
             "failed each response check: empty (no output), json (asked for JSON, did not parse or match the "
             "schema), tool_arguments (per tool call: arguments not JSON or not the tool's schema), repetition "
             "(ended in a loop). Skipped checks count on neither side.", "percentunit",
             Target(zero_filled_ratio(failed_range, judged_range), "{{check}}"), width=8, height=8, graph=False,
             thresholds=[("green", None), ("orange", 0.01), ("red", 0.05)], decimals=2),
        timeseries("Check failure ratio by model and check", "Failed / (passed + failed) per model and check, over "
                   "time, summed over the selected instances. A JSON-mode line above 5% or a repetition line above "
                   "2% for 15 minutes alerts (InfermeterJSONModeFailing, InfermeterRepetitionHigh).", "percentunit",
                   Target(zero_filled_ratio(failed_rate, judged_rate), "{{model}} {{check}}"), width=16, max_value=1),
        timeseries("Checks by check and result", "Response checks per second by check and result (pass, fail, "
                   "skipped), summed over the selected instances: how many answers each check sees.", "ops",
                   Target(f"sum by (check, result) ({rate(CHECKS, SERVING)})", "{{check}} {{result}}"),
                   width=24, stack=True),
    ]


def evaluations() -> list[Panel | Row]:
    return [
        Row("Evaluations (judge)"),
        timeseries("Eval score by rubric", "The judge's scores (0 to 1) of the sampled answers, per rubric: the "
                   "median and the 10th percentile from the histogram buckets of every selected instance, and "
                   "the mean. relevance and groundedness are 1 when good, toxicity 1 when toxic. Needs "
                   "--eval-url; the points are exemplars: the judged request's id, which finds its eval line.",
                   "percentunit",
                   Target(quantile(0.5, SCORE, JUDGE, by="rubric"), "{{rubric}} p50", exemplar=True),
                   Target(quantile(0.1, SCORE, JUDGE, by="rubric"), "{{rubric}} p10"),
                   Target(f"sum by (rubric) ({rate(SCORE + '_sum', JUDGE)}) / sum by (rubric) "
                          f"({rate(SCORE + '_count', JUDGE)})", "{{rubric}} mean"), width=12, max_value=1),
        heatmap("Eval score distribution", "How the judge's scores of the sampled answers spread over 0 to 1, in "
                "tenths, all rubrics of the selected models together, over time.", "percentunit",
                Target(f"sum by (le) ({rate(SCORE + '_bucket', JUDGE)})"), width=12),
        timeseries("Evaluations by outcome", "Judge calls per second by rubric and outcome: scored, failed (the "
                   "judge was down, slow or did not answer a verdict) and dropped (the bounded queue was full). "
                   "Failures and drops never slow the relay.", "ops",
                   Target(f"sum by (rubric, outcome) ({rate('infermeter_evals_total', HOST)})",
                          "{{rubric}} {{outcome}}"), width=24, stack=True),
    ]


def rows() -> list[Panel | Row]:
    return [*checks(), *evaluations()]

"""``replay`` (PROTOCOL section 10): the data stages on the replay split, the selected
methods' cloud training, then every method whose cloud sends a message replayed on every
device's stream under each request policy; ``kedro run --pipelines=replay`` picks
``features.split=replay`` (cli.py).

Per method: ``replay_<key>`` -> ``<key>_replay_table``, ``<key>_replay_report`` (costs) and,
with the learned policy, ``<key>_request_policy_model`` and its ONNX ``<key>_policy_onnx``.
Then ``report_replay`` -> ``replay_table``, ``replay_markdown`` (printed at the end),
``replay_chart`` and ``replay_mlflow_metrics``.
"""
from kedro.pipeline import Pipeline, node

from ..building import bound, model_dataset
from ..selection import Selection, current
from ..stages import data_stages, training_stages
from ..transcoding import for_this_run
from .nodes import replay_one_method, report_replay


def build(selection: Selection) -> Pipeline:
    learned = "learned" in selection.replay_policies
    nodes, reports = [], {"dataset": "params:dataset", "backbone": "params:backbone"}
    for method in selection.replayed:
        key = method.key
        outputs = [f"{key}_replay_table", f"{key}_replay_report"]
        inputs = {"model_bundle": model_dataset(method), "test_samples": "test_samples", "replay": "params:replay"}
        if learned:
            outputs += [f"{key}_request_policy_model", f"{key}_policy_onnx"]
            inputs["policy_samples"] = "policy_samples"
        nodes.append(node(bound(replay_one_method, method=method.name), inputs=inputs, outputs=outputs,
                          name=f"replay_{key}"))
        reports.update({key: f"{key}_replay_table", f"{key}_report": f"{key}_replay_report"})
    nodes.append(node(report_replay, inputs=reports,
                      outputs=["replay_table", "replay_markdown", "replay_chart", "replay_mlflow_metrics"],
                      name="report_replay"))
    return Pipeline(nodes)


def create_pipeline(**kwargs) -> Pipeline:
    selection = current()
    return data_stages() + training_stages(selection) + for_this_run(build(selection))

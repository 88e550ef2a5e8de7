"""Every model the pipelines name declares the request the model stage sends: the tensor contract of Triton's
vLLM backend. For the GPU model (which cannot run here) this is the check; the local models are also
asked for real in the stack tests."""

from __future__ import annotations

import json

import pytest
from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInput

from jobstream.pipelines import load_pipelines
from jobstream.settings import PROJECT_ROOT
from jobstream.workflow_io import GenerationParams
from workers.pipeline.activities.model.triton_vllm import OUTPUTS, model_inputs, sampling_parameters

REPOSITORY = PROJECT_ROOT / "workers" / "model_repository"
# As vllm_backend's auto_complete_config declares them (triton-inference-server/vllm_backend, src/model.py).
VLLM_INPUTS = {
    "text_input": "TYPE_STRING",
    "stream": "TYPE_BOOL",
    "sampling_parameters": "TYPE_STRING",
    "exclude_input_in_output": "TYPE_BOOL",
    "return_finish_reason": "TYPE_BOOL",
    "return_num_input_tokens": "TYPE_BOOL",
    "return_num_output_tokens": "TYPE_BOOL",
}
VLLM_OUTPUTS = {
    "text_output": "TYPE_STRING",
    "finish_reason": "TYPE_STRING",
    "num_input_tokens": "TYPE_UINT32",
    "num_output_tokens": "TYPE_UINT32",
}
WIRE_TYPE = {"TYPE_STRING": "BYTES", "TYPE_BOOL": "BOOL", "TYPE_UINT32": "UINT32"}


def config(model: str) -> ModelConfig:
    return text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(), ModelConfig())


@pytest.mark.parametrize("model", sorted(load_pipelines().models()))
def test_the_model_declares_what_the_model_stage_sends(model: str) -> None:
    declared = config(model)
    assert declared.name == model
    assert declared.model_transaction_policy.decoupled, "the model stage streams: a decoupled model"
    inputs = {i.name: i for i in declared.input}
    sent = model_inputs("It is a truth", GenerationParams(top_p=0.9, stop=("\n\n",)), 8)
    for tensor in sent:
        assert tensor.name() in inputs, f"{model} does not declare {tensor.name()}"
        want = inputs[tensor.name()]
        assert tensor.datatype() == WIRE_TYPE[DataType.Name(want.data_type)], tensor.name()
        assert list(want.dims) == tensor.shape() == [1], tensor.name()
    required = {name for name, i in inputs.items() if not i.optional}
    assert required <= {tensor.name() for tensor in sent}, f"{model} requires inputs the stage does not send"
    outputs = {o.name: DataType.Name(o.data_type) for o in declared.output}
    assert set(OUTPUTS) <= set(outputs), f"{model} lacks outputs the stage asks for"
    # ... and in the vLLM backend's own types, so a vLLM model and ours are one contract.
    assert {name: DataType.Name(i.data_type) for name, i in inputs.items()} == VLLM_INPUTS
    assert outputs == VLLM_OUTPUTS
    assert inputs["text_input"].optional is False
    assert all(i.optional for name, i in inputs.items() if name != "text_input")
    assert isinstance(inputs["stream"], ModelInput)


def test_the_sampling_parameters_are_vllms() -> None:
    params = GenerationParams(max_tokens=64, temperature=0.7, seed=3, top_p=0.9, stop=("\n\n", "Mr."))
    # max_tokens is what is left to generate (a continuation asks for less than the job's max_tokens).
    sampling = sampling_parameters(params, 5)
    assert sampling == {"max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n\n", "Mr."]}
    # Every key a field of vLLM's SamplingParams with its type (vllm/sampling_params.py).
    types = {"max_tokens": int, "temperature": float, "top_p": float, "seed": int, "stop": list}
    assert {key: type(value) for key, value in sampling.items()} == types
    assert "stop" not in sampling_parameters(GenerationParams(), 5)
    assert json.loads(json.dumps(sampling)) == sampling


def test_the_gpu_model_is_a_vllm_model_of_a_public_checkpoint() -> None:
    gpu = [m for m in sorted(load_pipelines().models()) if config(m).backend == "vllm"]
    assert gpu == ["opt125m"]
    declared = config("opt125m")
    assert declared.max_batch_size == 0  # vLLM batches by itself
    assert [group.kind for group in declared.instance_group] == [declared.instance_group[0].KIND_MODEL]
    engine = json.loads((REPOSITORY / "opt125m" / "1" / "model.json").read_text())
    assert engine["model"] == "facebook/opt-125m"

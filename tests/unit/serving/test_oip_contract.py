"""The committed gRPC contract: the descriptor set is what protoc makes of the .proto, the
service has the six OIP v2 methods, and its messages read tritonclient's on the wire."""

from __future__ import annotations

import subprocess
import sys

from serving.oip.contract import DESCRIPTOR_SET, PROTO, contract


def test_the_committed_descriptor_set_is_what_protoc_makes_of_the_proto(tmp_path):
    out = tmp_path / "fresh.binpb"
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}"]
    cmd += [f"--descriptor_set_out={out}", PROTO.name]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    assert out.read_bytes() == DESCRIPTOR_SET.read_bytes(), (
        "serving/oip/grpc_predict_v2.binpb is stale: regenerate it (serving/oip/contract.py)"
    )


def test_the_service_is_the_open_inference_protocol_v2():
    methods = set(contract().service.methods_by_name)
    assert methods == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }


def test_messages_read_tritonclients_requests_field_for_field():
    from tritonclient.grpc import service_pb2

    theirs = service_pb2.ModelInferRequest(model_name="m", model_version="2", id="r")
    tensor = theirs.inputs.add(name="age", datatype="INT64", shape=[2])
    tensor.contents.int64_contents.extend([3, 4])
    tensor.parameters["p"].string_param = "v"
    theirs.outputs.add(name="probability")
    theirs.raw_input_contents.append(b"\x01\x02")
    theirs.parameters["q"].int64_param = 5
    ours = contract().messages["ModelInferRequest"].FromString(theirs.SerializeToString())
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert list(ours.inputs[0].contents.int64_contents) == [3, 4]
    assert ours.parameters["q"].int64_param == 5

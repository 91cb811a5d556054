"""The gRPC contract: KServe's `grpc_predict_v2.proto`, as protoc compiled it, as message classes.

In: `grpc_predict_v2.proto` (KServe's `docs/predict-api/v2/grpc_predict_v2.proto`, verbatim)
and `grpc_predict_v2.binpb` beside it: protoc's descriptor set of that file, committed and
checked against it by tests/unit/serving/test_oip_contract.py. After changing the .proto,
regenerate it with `python -m grpc_tools.protoc -I serving/oip
--descriptor_set_out=serving/oip/grpc_predict_v2.binpb grpc_predict_v2.proto` (grpcio-tools,
a dev dependency: nothing is compiled at install or run time).
Out: `contract()`: the message classes by name, the service's descriptor and the pool holding
them.

The classes live in a descriptor pool of their own, not protobuf's default one: tritonclient
and MLServer register the same `inference.*` names in the default pool, and a process may hold
both a client and this server (tests, benchmarks, a notebook).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO = Path(__file__).with_name("grpc_predict_v2.proto")
DESCRIPTOR_SET = PROTO.with_suffix(".binpb")
PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"


@dataclass(frozen=True)
class Contract:
    """The compiled contract.

    Attributes:
        pool: the descriptor pool holding the file (and nothing from the default pool).
        messages: message classes by their name inside the package, e.g. `ModelInferRequest`.
        service: the `GRPCInferenceService` descriptor (its methods' input and output types).
    """

    pool: descriptor_pool.DescriptorPool
    messages: dict[str, type]
    service: object

    def method_types(self, method: str) -> tuple[type, type]:
        """(request class, response class) of one of the service's methods."""
        desc = self.service.methods_by_name[method]
        return self.messages[desc.input_type.name], self.messages[desc.output_type.name]


def file_protos() -> list[descriptor_pb2.FileDescriptorProto]:
    """The descriptor set's files (just the .proto: it imports nothing)."""
    return list(descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file)


@functools.cache
def contract() -> Contract:
    """The contract, compiled once per process."""
    files = file_protos()
    pool = descriptor_pool.DescriptorPool()
    for proto in files:
        pool.Add(proto)
    classes = message_factory.GetMessages(files, pool=pool)
    prefix = PACKAGE + "."
    messages = {name.removeprefix(prefix): cls for name, cls in classes.items()}
    return Contract(pool, messages, pool.FindServiceByName(SERVICE))

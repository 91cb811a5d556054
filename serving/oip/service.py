"""The gRPC server of one worker: OIP v2 inference, `grpc.health.v1` health and reflection.

In: the worker's `Serving` and `Predictor` (`serving.app`), so a call meets the same model (and
its hot reload), API keys (metadata `x-api-key` or `authorization: Bearer <key>`), admission,
validation, range guard, prediction log and metrics as an HTTP request; `settings.grpc_host`,
`grpc_port`, `threads` and `max_body_bytes`.
Out: `start()` -> a running `GrpcService` bound with SO_REUSEPORT (every worker binds the port;
the kernel spreads connections over them, as it does for HTTP); `stop()` lets calls in flight
finish. Refusals keep the HTTP API's classes: the status the core answers becomes a gRPC code
(`CODES`) with the same message (a 500's names the request id); trailing metadata carries
`x-request-id`, `x-model-name`, `x-model-version`, and `x-error-field` for the input at fault.
Health follows readiness (`Serving.ready`: draining, every worker loaded, log writable).
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from serving.errors import RequestError
from serving.oip.contract import SERVICE, contract, file_protos
from serving.oip.tensors import infer_response, parse_infer
from serving.settings import drain_s

log = logging.getLogger(__name__)
ROUTE = f"/{SERVICE}/ModelInfer"  # the metrics' route label of inference calls
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_TRAILERS = {"X-Request-ID", "X-Model-Name", "X-Model-Version", "X-Out-Of-Range"}
_HEALTH_POLL_S = 1.0


class GrpcRequest:
    """One ModelInfer call, as `Predictor.outcome` reads a request."""

    __slots__ = ("_body", "environ", "message")
    content_type = "application/grpc"

    def __init__(self, body: bytes, message, metadata) -> None:
        self._body = body
        self.message = message
        self.environ = metadata_environ(metadata)

    def body(self, limit: int) -> bytes:
        """The serialized request (gRPC already refused messages over `limit` bytes)."""
        return self._body

    def drain(self, cap: int) -> bool:
        """Nothing to drain: gRPC read the whole message."""
        return True

    def parse(self, body: bytes, schema):
        """The request's tensors as columns (`serving.oip.tensors.parse_infer`)."""
        return parse_infer(self.message, schema)

    def explain_asked(self) -> bool:
        """The request parameter `explain` (bool, or the string "true"), `serving.explain`."""
        if "explain" not in self.message.parameters:
            return False
        param = self.message.parameters["explain"]
        kind = param.WhichOneof("parameter_choice")
        if kind == "bool_param":
            return param.bool_param
        if kind == "string_param":
            return param.string_param.strip().lower() in ("true", "1", "yes", "on")
        return bool(getattr(param, kind)) if kind else False


def metadata_environ(metadata) -> dict[str, str]:
    """Call metadata as WSGI environ keys (`x-api-key` -> `HTTP_X_API_KEY`), for the code
    shared with HTTP (`serving.auth`, `serving.errors.request_id`). Binary (`-bin`) entries
    are left out."""
    return {
        "HTTP_" + key.upper().replace("-", "_"): value
        for key, value in metadata or ()
        if not key.endswith("-bin")
    }


def error_message(status: int, body: dict) -> str:
    """The message of a refused call: the HTTP error's, and the request id of a 500."""
    if status == 500:
        return f"internal error (request id {body.get('request_id')})"
    return body.get("message", "error")


def _abort(context, exc: RequestError):
    if exc.field is not None:
        context.set_trailing_metadata((("x-error-field", exc.field),))
    context.abort(CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)


class InferenceService:
    """`GRPCInferenceService` over the worker's serving state."""

    def __init__(self, serving, predictor) -> None:
        self.serving = serving
        self.predictor = predictor
        self.contract = contract()
        self.messages = self.contract.messages
        self._infer_types = self.contract.method_types("ModelInfer")

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers (ModelInfer reads raw bytes: it decodes them itself,
        so a malformed message is INVALID_ARGUMENT, not gRPC's INTERNAL)."""
        methods = {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }
        handlers = {}
        for name, fn in methods.items():
            request_cls, response_cls = self.contract.method_types(name)
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=None if name == "ModelInfer" else request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def server_live(self, request, context):
        """Liveness, as `/v2/health/live`."""
        return self.messages["ServerLiveResponse"](live=self.serving.live()[0])

    def server_ready(self, request, context):
        """Readiness, as `/v2/health/ready`."""
        return self.messages["ServerReadyResponse"](ready=self.serving.ready())

    def model_ready(self, request, context):
        """Whether `name` (and `version`, if given) is the loaded model."""
        try:
            self.serving.model(request.name, request.version or None)
        except RequestError:
            return self.messages["ModelReadyResponse"](ready=False)
        return self.messages["ModelReadyResponse"](ready=True)

    def server_metadata(self, request, context):
        """The server's name, version and extensions, as `GET /v2`."""
        from mlcycle import __version__

        return self.messages["ServerMetadataResponse"](
            name="mlcycle", version=__version__, extensions=["model_repository_health"]
        )

    def model_metadata(self, request, context):
        """The loaded model's inputs and outputs, as `GET /v2/models/<name>`."""
        try:
            svc = self.serving.model(request.name, request.version or None)
        except RequestError as exc:
            _abort(context, exc)
        meta = svc.metadata()
        response = self.messages["ModelMetadataResponse"]
        tensor = response.TensorMetadata
        return response(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    def model_infer(self, body: bytes, context):
        """Score the request's rows through the HTTP API's core (`Predictor.outcome`)."""
        request_cls, response_cls = self._infer_types
        try:
            request = request_cls.FromString(body)
        except DecodeError as exc:
            _abort(context, RequestError(f"malformed ModelInferRequest: {exc}"))
        name = self.serving.settings.model_name
        if request.model_name != name:
            _abort(context, RequestError(f"unknown model '{request.model_name}'", 404, "name"))
        call = GrpcRequest(body, request, context.invocation_metadata())
        status, headers, payload = self.predictor.outcome(
            call, ROUTE, "grpc", request.model_version or None
        )
        trailers = [(k.lower(), v) for k, v in headers.items() if k in _TRAILERS]
        if status == 200:
            context.set_trailing_metadata(trailers)
            return infer_response(response_cls, payload, raw=bool(request.raw_input_contents))
        if payload.get("field") is not None:
            trailers.append(("x-error-field", str(payload["field"])))
        context.set_trailing_metadata(trailers)
        context.abort(CODES.get(status, grpc.StatusCode.INTERNAL), error_message(status, payload))


class _Health(health.HealthServicer):
    """`grpc.health.v1` statuses ("" and the inference service) following `ready()`."""

    def __init__(self, ready) -> None:
        super().__init__()
        self._ready = ready
        self._status = None
        self.refresh()

    def refresh(self) -> None:
        """Set SERVING or NOT_SERVING from readiness now (Watch streams see changes)."""
        status = health_pb2.HealthCheckResponse.SERVING
        if not self._ready():
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        if status != self._status:
            self._status = status
            for name in ("", SERVICE):
                self.set(name, status)

    def Check(self, request, context):  # noqa: N802 - the gRPC method's name
        """The status as of this call, not of the last poll."""
        self.refresh()
        return super().Check(request, context)


def reflection_pool() -> descriptor_pool.DescriptorPool:
    """A pool with the three services' files, for reflection (the inference service's
    messages are not in protobuf's default pool, see `serving.oip.contract`)."""
    pool = descriptor_pool.DescriptorPool()
    for proto in file_protos():
        pool.Add(proto)
    for module in (health_pb2, reflection_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    return pool


class GrpcService:
    """A started gRPC server and the thread keeping its health statuses current."""

    def __init__(self, server: grpc.Server, health_servicer: _Health, grace_s: float) -> None:
        self.server = server
        self.health = health_servicer
        self.grace_s = grace_s
        self._stopped = threading.Event()
        threading.Thread(target=self._follow, name="grpc-health", daemon=True).start()

    def _follow(self) -> None:
        while not self._stopped.wait(_HEALTH_POLL_S):
            try:
                self.health.refresh()
            except Exception:  # a passing fault reading the run folder: try again next poll
                log.exception("could not refresh the gRPC health status")

    def stop(self) -> None:
        """Refuse new calls (health NOT_SERVING), let calls in flight finish within the grace
        period, then stop."""
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_s).wait()


def address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start(serving, predictor) -> GrpcService:
    """Start this worker's gRPC server on `settings.grpc_host` (default 127.0.0.1) and
    `settings.grpc_port`.

    Raises:
        RuntimeError: the port cannot be bound.
    """
    s = serving.settings
    server = grpc.server(
        futures.ThreadPoolExecutor(s.threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", s.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ],
    )
    server.add_generic_rpc_handlers((InferenceService(serving, predictor).handler(),))
    health_servicer = _Health(serving.ready)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server, pool=reflection_pool())
    where = address(s.grpc_host or "127.0.0.1", s.grpc_port)
    server.add_insecure_port(where)
    server.start()
    log.info("OIP v2 gRPC on %s", where)
    return GrpcService(
        server, health_servicer, max(1.0, drain_s(s.shutdown_delay_s, s.shutdown_grace_s))
    )

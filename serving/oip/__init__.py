"""Open Inference Protocol v2 over gRPC, beside the HTTP API (`mlcycle serve --grpc-port`).

`contract`: KServe's `grpc_predict_v2.proto` and the message classes compiled from it;
`tensors`: request tensors to columns and probabilities back; `service`: the gRPC server each
worker runs (inference, `grpc.health.v1`, reflection). Nothing here runs at import.
"""

#!/usr/bin/env python3
"""Calls a running foresight server the way KEDA's external scaler does.

KEDA (pkg/scalers/external_scaler.go) calls GetMetricSpec, then GetMetrics
with the metricName it was given, then IsActive, and for `external-push`
triggers reads StreamIsActive. Stubs are generated from proto/ at run time with
grpcio-tools, so this client shares no code with foresight.

Usage: keda_client.py --addr HOST:PORT --proto-dir DIR
                      [--ca-cert FILE [--client-cert FILE --client-key FILE]]
Prints one JSON object with what it saw; exits 1 on any protocol violation,
4 when the first call cannot get through (connection or TLS handshake
refused; the JSON then holds connectError and connectDetails).

TLS mirrors KEDA's external scaler: `caCert` verifies the server, and
`tlsClientCert`/`tlsClientKey` are presented when the server asks for a
client certificate. Without --ca-cert the channel is plaintext.
"""
import argparse
import importlib
import json
import sys
import tempfile

try:
    import grpc
    from grpc_tools import protoc
except ImportError as e:  # the Rust test turns this into an install hint
    print(f"MISSING-PYTHON-DEPS: {e}", file=sys.stderr)
    sys.exit(3)


def load_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="foresight-stubs-")
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}",
        f"--grpc_python_out={out}", f"{proto_dir}/externalscaler.proto",
    ])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("externalscaler_pb2"), importlib.import_module("externalscaler_pb2_grpc")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(args):
    if not args.ca_cert:
        return grpc.insecure_channel(args.addr)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca_cert),
        private_key=read(args.client_key) if args.client_key else None,
        certificate_chain=read(args.client_cert) if args.client_cert else None,
    )
    return grpc.secure_channel(args.addr, creds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--ca-cert", help="PEM CA that signed the server's certificate (KEDA's caCert)")
    ap.add_argument("--client-cert", help="PEM client certificate (KEDA's tlsClientCert)")
    ap.add_argument("--client-key", help="PEM key of --client-cert (KEDA's tlsClientKey)")
    ap.add_argument("--ready-timeout", type=float, default=10.0,
                    help="seconds to wait for the channel to connect")
    args = ap.parse_args()
    if (args.client_cert is None) != (args.client_key is None):
        ap.error("--client-cert and --client-key go together")
    if args.client_cert and not args.ca_cert:
        ap.error("--client-cert needs --ca-cert (client certificates are sent over TLS)")
    pb, pb_grpc = load_stubs(args.proto_dir)
    failures = []
    seen = {"tls": bool(args.ca_cert), "clientCert": bool(args.client_cert)}

    with open_channel(args) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        try:
            grpc.channel_ready_future(channel).result(timeout=args.ready_timeout)
        except grpc.FutureTimeoutError:
            pass  # the first call below reports why
        ref = pb.ScaledObjectRef(
            name="orders-consumer", namespace="shop",
            scalerMetadata={
                "scalerAddress": "foresight.keda.svc.cluster.local:9090",
                "connectionsQuery": "nyc_taxi", "connectionsTarget": "1000",
                "minReplicaCount": "1", "maxReplicaCount": "60",
            })

        # KEDA's budget for these calls together is 3 s. A connection or
        # handshake the server refused fails the first call (no
        # wait_for_ready), with gRPC's reason.
        try:
            spec = stub.GetMetricSpec(ref, timeout=3)
        except grpc.RpcError as e:
            seen["connectError"] = e.code().name
            seen["connectDetails"] = e.details()
            print(json.dumps(seen))
            return 4
        if len(spec.metricSpecs) != 1:
            failures.append(f"expected one metric spec, got {len(spec.metricSpecs)}")
        ms = spec.metricSpecs[0]
        seen["metricName"] = ms.metricName
        seen["targetSize"] = ms.targetSize
        seen["targetSizeFloat"] = ms.targetSizeFloat
        if ms.targetSize != 1 or ms.targetSizeFloat != 1.0:
            failures.append(f"target must be 1 in both fields, got {ms.targetSize}/{ms.targetSizeFloat}")

        metrics = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=ms.metricName), timeout=3)
        if len(metrics.metricValues) != 1:
            failures.append(f"expected one metric value, got {len(metrics.metricValues)}")
        mv = metrics.metricValues[0]
        seen["metricValue"] = mv.metricValue
        seen["metricValueFloat"] = mv.metricValueFloat
        if float(mv.metricValue) != mv.metricValueFloat:
            failures.append("metricValue and metricValueFloat disagree")
        if not 1 <= mv.metricValue <= 60:
            failures.append(f"metricValue {mv.metricValue} outside [1, 60]")

        active = stub.IsActive(ref, timeout=3)
        seen["isActive"] = active.result

        stream = stub.StreamIsActive(ref, timeout=5)
        first = next(iter(stream))
        seen["streamIsActiveFirst"] = first.result
        stream.cancel()
        if first.result != active.result:
            failures.append("StreamIsActive's first message differs from IsActive")

        # A second foresight trigger on the same ScaledObject, capped at 2:
        # KEDA asks about each trigger in turn at every poll, and the HPA
        # follows the higher count. Each must answer by its own metadata.
        capped = pb.ScaledObjectRef(
            name=ref.name, namespace=ref.namespace,
            scalerMetadata={**dict(ref.scalerMetadata), "maxReplicaCount": "2"})
        pairs = []
        for _ in range(3):
            pair = []
            for r in (ref, capped):
                stub.GetMetricSpec(r, timeout=3)
                got = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=ms.metricName), timeout=3)
                pair.append(got.metricValues[0].metricValue)
            pairs.append(pair)
        seen["twoTriggers"] = pairs
        for wide, narrow in pairs:
            if not 1 <= wide <= 60 or not 1 <= narrow <= 2:
                failures.append(f"two triggers answered {wide} and {narrow}; bounds [1, 60] and [1, 2]")

        bad = pb.ScaledObjectRef(name="broken", namespace="shop",
                                 scalerMetadata={"queueDepthQuery": "nyc_taxi", "mode": "x"})
        try:
            stub.GetMetricSpec(bad, timeout=3)
            failures.append("invalid metadata was accepted")
        except grpc.RpcError as e:
            seen["invalidCode"] = e.code().name
            seen["invalidMessage"] = e.details()

    seen["failures"] = failures
    print(json.dumps(seen))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

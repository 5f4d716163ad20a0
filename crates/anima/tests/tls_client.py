#!/usr/bin/env python3
"""Reaches an `anima up` that speaks TLS with clients other than Anima's own.

    tls_client.py grpc    HOST:PORT CA   the gRPC health service with grpcio,
                                         trusting CA, then without it
    tls_client.py healthz URL CA         GET /healthz with httpx, trusting CA,
                                         then without it

Prints one line per check; exits non-zero on the first failure.
"""

import ssl
import sys

import grpc
import httpx2
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def health(target, credentials):
    with grpc.secure_channel(target, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def grpc_checks(target, ca):
    with open(ca, "rb") as pem:
        trusted = grpc.ssl_channel_credentials(root_certificates=pem.read())
    status = health(target, trusted)
    check(status == health_pb2.HealthCheckResponse.SERVING, "grpcio trusting the CA: SERVING")
    try:
        health(target, grpc.ssl_channel_credentials())
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.UNAVAILABLE, f"grpcio without the CA is refused ({error.code()})")
    else:
        check(False, "grpcio without the CA is refused")


def healthz_checks(url, ca):
    answer = httpx2.get(url, verify=ssl.create_default_context(cafile=ca), timeout=10)
    check(answer.status_code == 200, f"/healthz trusting the CA answers 200 ({answer.status_code})")
    try:
        httpx2.get(url, timeout=10)
    except httpx2.ConnectError as error:
        check("CERTIFICATE_VERIFY_FAILED" in str(error), f"/healthz without the CA is refused ({error})")
    else:
        check(False, "/healthz without the CA is refused")


if __name__ == "__main__":
    command, address, ca = sys.argv[1:4]
    {"grpc": grpc_checks, "healthz": healthz_checks}[command](address, ca)

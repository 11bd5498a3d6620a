"""Sends traces, metrics and logs with the OpenTelemetry Python SDK.

Used by tests/python_sdk.rs as a real OTLP client. Prints one JSON line:
the trace ids (hex) and span count it exported, and the metric and log
counts, so the test can compare them with what the sinks received.
"""

import argparse
import json
import logging
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor


def exporters(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPMetricExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return (
        OTLPSpanExporter(endpoint=endpoint + "/v1/traces"),
        OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"),
        OTLPLogExporter(endpoint=endpoint + "/v1/logs"),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--spans", type=int, default=4)
    parser.add_argument("--logs", type=int, default=30)
    args = parser.parse_args()

    span_exporter, metric_exporter, log_exporter = exporters(args.protocol, args.endpoint)
    resource = Resource.create({"service.name": "python-sdk-" + args.protocol})

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=64))
    tracer = tracer_provider.get_tracer("interop")
    trace_ids = []
    for t in range(args.traces):
        with tracer.start_as_current_span(f"root-{t}") as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            for s in range(args.spans - 1):
                with tracer.start_as_current_span(f"child-{s}") as child:
                    child.set_attribute("i", s)

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meter_provider.get_meter("interop").create_counter("interop.requests")
    for route in ("/a", "/b", "/c"):
        counter.add(5, {"route": route})

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    logger = logging.getLogger("interop")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    logger.setLevel(logging.INFO)
    with tracer.start_as_current_span("logging") as span:
        trace_ids.append(format(span.get_span_context().trace_id, "032x"))
        for i in range(args.logs):
            logger.info("interop log %d", i)

    # Shutdown flushes every provider; the metric reader exports exactly
    # one collection then (a force_flush first would export the cumulative
    # points twice).
    ok = tracer_provider.force_flush(10_000)
    ok = logger_provider.force_flush(10_000) and ok
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
    print(json.dumps({
        "trace_ids": trace_ids,
        "spans": args.traces * args.spans + 1,
        "metric_points": 3,
        "logs": args.logs,
        "flushed": bool(ok),
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

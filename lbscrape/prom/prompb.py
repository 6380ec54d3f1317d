"""Prometheus remote-write 1.0 protobuf messages (prometheus.WriteRequest and friends).

lbscrape.prom.wire writes these messages without the protobuf runtime; this is the schema
they are checked against (the tests decode with it).

Built from a descriptor at import time rather than generated code: the schema is four
small messages, and this keeps protoc and its runtime-version checks out of the build.
Field numbers follow prometheus/prompb (types.proto, remote.proto). Registered in a
private pool so another package's copy of the same names cannot clash.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="lbscrape/prompb/remote.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            f = m.field.add(name=fname, number=number, type=ftype)
            f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                f.type_name = type_name

    message("Label", ("name", 1, _F.TYPE_STRING, None, False),
            ("value", 2, _F.TYPE_STRING, None, False))
    message("Sample", ("value", 1, _F.TYPE_DOUBLE, None, False),
            ("timestamp", 2, _F.TYPE_INT64, None, False))
    message("TimeSeries", ("labels", 1, _F.TYPE_MESSAGE, ".prometheus.Label", True),
            ("samples", 2, _F.TYPE_MESSAGE, ".prometheus.Sample", True))
    message("WriteRequest", ("timeseries", 1, _F.TYPE_MESSAGE, ".prometheus.TimeSeries", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name in ("Label", "Sample", "TimeSeries", "WriteRequest")
    }


_MESSAGES = _build()
WriteRequest: Any = _MESSAGES["WriteRequest"]

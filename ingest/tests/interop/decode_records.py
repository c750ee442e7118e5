"""Decodes Kafka record values with fastavro, as a Python consumer of the topic
would: the writer schema is found by the CRC-64-AVRO fingerprint fastavro itself
computes over the .avsc's Parsing Canonical Form, then the datum after the
single-object header (C3 01, fingerprint) is read with that schema.

    python3 decode_records.py SCHEMA.avsc [SCHEMA.avsc ...] RECORDS

Each record is read with the schema its fingerprint names (scan_event.avsc and
epcis_event.avsc share the topic).

RECORDS holds each value as a 4-byte big-endian length and its bytes. One line
per record goes to stdout, in the same form as DecodeRecords.java prints.
"""

import datetime
import io
import json
import struct
import sys

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def millis(t):
    # timestamp-millis comes back as a datetime; integer arithmetic keeps it exact.
    d = t - EPOCH
    return d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000


def float_hex(v):
    return "null" if v is None else struct.pack("<f", v).hex()


def main(schema_paths, records_path):
    known = {}
    for path in schema_paths:
        with open(path) as f:
            schema = fastavro.parse_schema(json.load(f))
        known[bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))] = schema
    out = []
    with open(records_path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        value = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
        if value[:2] != b"\xc3\x01":
            sys.exit(f"record {len(out)}: not a single-object encoding")
        writer = known.get(value[2:10])
        if writer is None:
            sys.exit(f"record {len(out)}: cannot resolve schema for fingerprint {value[2:10].hex()}")
        body = io.BytesIO(value[10:])
        r = fastavro.schemaless_reader(body, writer, None)
        if body.tell() != len(value) - 10:
            sys.exit(f"record {len(out)}: bytes left over after the datum")
        if writer["name"] == "dev.sealtrail.EpcisEvent":
            out.append(
                "|".join(
                    [
                        "epcis",
                        str(r["event_id"]),
                        r["event"].encode("utf-8").hex(),
                        r["device_id"],
                        r["signature"].hex(),
                    ]
                )
            )
            continue
        out.append(
            "|".join(
                [
                    str(r["event_id"]),
                    str(millis(r["event_time"])),
                    r["event_timezone_offset"],
                    r["action"],
                    r["biz_step"],
                    r["disposition"],
                    ",".join(r["item_ids"]),
                    r["read_point"],
                    r["biz_location"],
                    r["country"],
                    ";".join(f"{t['type']}:{t['id']}" for t in r["biz_transactions"]),
                    float_hex(r["temperature_c"]),
                    float_hex(r["relative_humidity_pct"]),
                    r["device_id"],
                    r["signature"].hex(),
                ]
            )
        )
    sys.stdout.write("".join(line + "\n" for line in out))


if __name__ == "__main__":
    main(sys.argv[1:-1], sys.argv[-1])

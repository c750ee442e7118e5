"""GS1's reference CBV 2.0 event hash IDs for the events of an EPCIS 2.0 JSON-LD file.

Used by event_hash_reference.rs: `python3 epcis_reference_hashes.py DOCUMENT.jsonld`
prints one JSON object, {"version": ..., "events": {eventID: {"hash", "prehash"}}},
computed by PyPI's epcis-event-hash-generator the way its command line computes them
(the document read whole, each event hashed). An event the reference cannot hash has
null for both; the reference itself only logs those and leaves them out.
"""

import json
import sys
from importlib.metadata import version

from epcis_event_hash_generator import events_from_file_reader, hash_generator


def main(path):
    events = events_from_file_reader.event_list_from_file(path)
    out = {}
    for event in events[2]:
        ids = [value for (name, value, _) in event[2] if name == "eventID"]
        prehashes = hash_generator.derive_prehashes_from_events(("EventList", "", [event]))
        hashes = hash_generator.calculate_hashes_from_pre_hashes(prehashes)
        out[ids[0] if ids else ""] = {
            "hash": hashes[0] if hashes else None,
            "prehash": prehashes[0] if prehashes else None,
        }
    json.dump({"version": version("epcis-event-hash-generator"), "events": out}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])

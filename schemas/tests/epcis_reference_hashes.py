"""GS1's reference CBV 2.0 event hash IDs for the events of EPCIS 2.0 JSON-LD files.

Used by event_hash_reference.rs and event_hash_json_reference.rs:
`python3 epcis_reference_hashes.py DOCUMENT.jsonld [MORE.jsonld ...]` prints one JSON
object, {"version": ..., "events": {eventID: {"hash", "prehash"}}}, the events of all
the documents together, computed by PyPI's epcis-event-hash-generator the way its
command line computes them (each document read whole, each of its events hashed).
An event the reference cannot hash has null for both; the reference itself only logs
those and leaves them out. So has every event of a document the reference cannot read
at all (it stops with an error).
"""

import json
import sys
from importlib.metadata import version

from epcis_event_hash_generator import events_from_file_reader, hash_generator, json_to_py


def document_hashes(path):
    """The hashes of the events of one document, by eventID."""
    # The reference keeps the namespaces of a document's @context in a module global,
    # and a later document's events would see them: each document stands alone here,
    # as with one run of the command line per document.
    json_to_py._namespaces.clear()
    try:
        events = events_from_file_reader.event_list_from_file(path)
    except Exception:  # noqa: BLE001 - any error of the reference means no hash
        try:
            with open(path) as f:
                listed = json.load(f)["epcisBody"]["eventList"]
        except Exception:  # noqa: BLE001 - not even JSON: no events to name
            return {}
        ids = [e.get("eventID", "") for e in listed if isinstance(e, dict)]
        return {i: {"hash": None, "prehash": None} for i in ids}
    out = {}
    for event in events[2]:
        ids = [value for (name, value, _) in event[2] if name == "eventID"]
        prehashes = hash_generator.derive_prehashes_from_events(("EventList", "", [event]))
        hashes = hash_generator.calculate_hashes_from_pre_hashes(prehashes)
        out[ids[0] if ids else ""] = {
            "hash": hashes[0] if hashes else None,
            "prehash": prehashes[0] if prehashes else None,
        }
    return out


def main(paths):
    out = {}
    for path in paths:
        out.update(document_hashes(path))
    json.dump({"version": version("epcis-event-hash-generator"), "events": out}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])

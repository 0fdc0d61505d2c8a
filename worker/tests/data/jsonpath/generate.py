"""Computes what jsonpath-rw 1.4.0 makes of each field path in PATHS over DOC,
the way stackdistiller 0.12 used it, and writes jsonpath_rw.json for
tests/jsonpath_rw.rs.

    python3 -m venv /tmp/jprw && /tmp/jprw/bin/pip install jsonpath-rw==1.4.0
    /tmp/jprw/bin/python worker/tests/data/jsonpath/generate.py

For each path: "error" (the parser refused it), "crash" (find() raised: the
original lost the notification), or "matches": every non-null match as
[path, value], the path joined as stackdistiller handed it to plugins.
"""
import json
import os

import jsonpath_rw

DOC = {
    "event_type": "compute.instance.update",
    "publisher_id": "compute.host-1",
    "payload": {
        "tenant_id": "t1",
        "state": "active",
        "nothing": None,
        "memory_mb": 512,
        "vcpus": 1.5,
        "flag": True,
        "instance-id": "hyphen",
        "where": "keyword",
        "image_meta": {"org.openstack__1__architecture": "x64", "a.b": "dotted", "base": "b1"},
        "fixed_ips": [
            {"address": "10.0.0.2", "version": 4, "meta": {"address": "deep"}},
            {"address": "10.0.0.3", "version": 6, "label": None},
            {"address": "10.0.0.4", "version": 4},
        ],
        "tags": ["a", "b", "c", "d"],
        "empty": {},
        "nested": {"a": {"b": {"c": "abc"}}, "list": [[1, 2], [3]]},
    },
}

PATHS = [
    # plain steps
    "payload.tenant_id", "$.payload.tenant_id", "payload['state']", "payload[state]",
    'payload."state"', "payload.instance-id", "payload.'where'", "payload.image_meta.'a.b'",
    "payload.image_meta.*", "payload.*", "payload.tenant_id,state", "payload[tenant_id,state]",
    "payload.'*'", "payload.nothing", "payload.nested.a.b.c", "payload.fixed_ips.address",
    # indexes and slices
    "payload.fixed_ips[0].address", "payload.fixed_ips[-1].address", "payload.fixed_ips[5].address",
    "payload.fixed_ips[-5].address", "payload.fixed_ips.[1].address", "payload.tags[*]",
    "payload.tags[1:]", "payload.tags[:2]", "payload.tags[1:3]", "payload.tags[-2:]",
    "payload.tags[:-3]", "payload.tags[:]", "payload.state[*]", "payload.memory_mb[*]",
    "payload.flag[*]", "payload.image_meta[*]", "payload.image_meta[*].base",
    "payload.vcpus[*]", "payload.nothing[*]", "payload.state[0]", "payload.image_meta[0]",
    "payload.memory_mb[0]", "payload.nested.list[*][*]", "payload.nested.list[0][1]",
    "[0]", "payload.state[1:]",
    # unions
    "(payload.nothing)|(payload.state)", "payload.nothing|payload.state",
    "payload.tenant_id|payload.state", "payload.a.b|payload.state",
    "payload.fixed_ips[*].address|version", "(payload.fixed_ips[*].address)|(payload.tags[0])",
    "payload.(tenant_id|state)", "(payload.tenant_id|payload.state).x",
    # descendants
    "payload..address", "payload..c", "payload.nested..b", "$..address", "payload..nothing",
    "payload..'org.openstack__1__architecture'", "payload.fixed_ips..address",
    "payload..fixed_ips[*].address", "payload..[0]", "payload..version",
    "payload..a.b|state",
    # where
    "payload.fixed_ips[*] where label", "payload.fixed_ips[*] where meta",
    "(payload.fixed_ips[*] where meta).address", "payload.fixed_ips[*].address where nothing",
    "payload where tenant_id", "payload.nested where a.b",
    # named operators, root
    "payload.`this`.state", "`this`.payload.state", "payload.state.`parent`.tenant_id",
    "payload.fixed_ips[0].address.`parent`.version", "payload.`parent`.publisher_id",
    "payload.$.publisher_id", "`parent`", "payload.`that`",
    # intersection and errors
    "payload.state & payload.state", "payload.bogus(", "payload.", "payload..", "payload[",
    "payload.1", "", "payload.a b", "payload.#", "payload.'x", "payload[0,1]", "payload[1:2:3]",
    "(payload.state", "payload.state)", "..payload", "payload.-",
]


def get_path(match):
    if match.context is not None:
        for element in get_path(match.context):
            yield element
        yield str(match.path)


def evaluate(spec):
    try:
        expr = jsonpath_rw.parse(spec)
    except Exception as e:  # the parser's own exceptions are plain Exception
        return {"path": spec, "error": "%s: %s" % (type(e).__name__, e)}
    try:
        found = expr.find(DOC)
        matches = [[".".join(get_path(m)), m.value] for m in found if m.value is not None]
    except Exception as e:
        return {"path": spec, "crash": "%s: %s" % (type(e).__name__, e)}
    return {"path": spec, "parsed": str(expr), "matches": matches}


def main():
    out = {
        "source": "jsonpath-rw 1.4.0 (run), the way stackdistiller 0.12 reads matches",
        "document": DOC,
        "cases": [evaluate(p) for p in PATHS],
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "jsonpath_rw.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()

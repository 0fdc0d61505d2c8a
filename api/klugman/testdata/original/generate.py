# Runs the ORIGINAL klugman rendering code on a JSON file (see README.md).
# Harness: drives the ORIGINAL klugman rendering (py2 code on py3 with shims) on a JSON file.
import sys, json, io, contextlib
sys.path.insert(0, '/work/ref/timex')
sys.path.insert(0, '/work/ref/klugman/klugman')
import base, jsonutil, v1
base.remove_empty = lambda kv: dict([(k, v) for k, v in kv.items() if v])
import types
kind, path = sys.argv[1], sys.argv[2]
data = json.load(open(path), object_hook=jsonutil.object_hook)
base.get = lambda url, cmd, params, debug=False: data
args = types.SimpleNamespace(_from=None, to=None, name=None, traits=None, debug=False,
    state=None, details=False, count=False, stream_id=None, msg_id=None)
if kind == 'streams': v1.Streams('u')._cmdline(args)
elif kind == 'events': v1.Events('u')._cmdline(args)
elif kind == 'events_count':
    args.count = True; v1.Events('u')._cmdline(args)

"""Read a W&B offline run file (``run-<id>.wandb``) back, for tests: the wandb package no longer ships
a Python reader (its Go core writes the file). The file is a LevelDB log (32 KiB blocks of records,
each with a 7-byte header: crc32c, length, type; a record may span blocks as FIRST/MIDDLE/LAST
pieces) after a 7-byte W&B header; each record is a ``wandb_internal_pb2.Record`` protobuf."""

import glob
import json
import os
import struct

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):
            return  # the tail of a file whose writer was killed mid-record
        piece = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            yield piece
        elif kind == FIRST:
            pending = piece
        elif kind == MIDDLE:
            pending += piece
        elif kind == LAST:
            yield pending + piece
            pending = b""


def read_run(save_dir) -> list:
    """Every offline run under ``save_dir/wandb``, oldest first, each a dict: ``id``, ``name``,
    ``project``, ``config`` (key -> value), ``history`` (one dict per logged step), ``exit_code``."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs = []
    # in the order they were last written: the directory names sort by start time only to the second,
    # and two short resumes of the same run (same id) can start within one second
    files = glob.glob(os.path.join(str(save_dir), "wandb", "offline-run-*", "run-*.wandb"))
    for path in sorted(files, key=lambda p: (os.path.getmtime(p), p)):
        # the id is in the file name too: a killed writer may not have flushed the run record
        run_id = os.path.basename(path)[len("run-"):-len(".wandb")]
        run = {"id": run_id, "history": [], "config": {}, "exit_code": None, "file": path}
        with open(path, "rb") as f:
            data = f.read()
        for payload in _payloads(data):
            rec = pb.Record()
            rec.ParseFromString(payload)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run.update(id=rec.run.run_id, name=rec.run.display_name, project=rec.run.project)
                run["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "config":
                run["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
            elif kind == "history":
                run["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
            elif kind == "exit":
                run["exit_code"] = rec.exit.exit_code
        runs.append(run)
    return runs

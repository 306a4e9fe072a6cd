#!/usr/bin/python3
"""Tensor names, types and SHA-256 of the tensor data of GGUF files, as the quantize tests compare them.

    tensor_hashes.py FILE.gguf...            one JSON object per file: names, types, per-tensor sha256, data sha256
    tensor_hashes.py --diff A.gguf B.gguf    the tensors whose type or bytes differ

Reads the files with llama.cpp's gguf-py (GGUF_PY points at its folder, default /tmp/llama-tools-ppl/gguf-py).
"""
import hashlib, json, os, sys
sys.path.insert(0, os.environ.get("GGUF_PY", "/tmp/llama-tools-ppl/gguf-py"))
from gguf import GGUFReader  # noqa: E402


def describe(path):
    r = GGUFReader(path)
    names, types, hashes = [], [], []
    whole = hashlib.sha256()
    for t in r.tensors:  # file order
        data = bytes(t.data.tobytes())
        names.append(t.name)
        types.append(t.tensor_type.name)
        hashes.append(hashlib.sha256(data).hexdigest())
        whole.update(data)
    return {"names": names, "types": types, "tensor_sha256": hashes, "data_sha256": whole.hexdigest()}


if __name__ == "__main__":
    if sys.argv[1] == "--diff":
        a, b = describe(sys.argv[2]), describe(sys.argv[3])
        if a["names"] != b["names"]:
            print("tensor order differs:", a["names"], b["names"])
        bad = 0
        for i, n in enumerate(a["names"]):
            j = b["names"].index(n) if n in b["names"] else -1
            if j < 0: print(n, "missing"); bad += 1; continue
            if a["types"][i] != b["types"][j] or a["tensor_sha256"][i] != b["tensor_sha256"][j]:
                print(f"{n}: {a['types'][i]} vs {b['types'][j]}", "same bytes" if a["tensor_sha256"][i] == b["tensor_sha256"][j] else "bytes differ")
                bad += 1
        print(f"{bad} of {len(a['names'])} tensors differ")
        sys.exit(1 if bad else 0)
    print(json.dumps({p: describe(p) for p in sys.argv[1:]}, indent=1))

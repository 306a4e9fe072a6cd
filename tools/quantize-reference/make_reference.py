#!/usr/bin/python3
"""Writes Engine.Tests/TestData/quantize/fixtures.json from llama.cpp's quantized fixtures.

    make_reference.py REF_DIR > Engine.Tests/TestData/quantize/fixtures.json

REF_DIR holds <fixture>-<TYPE>.gguf and <fixture>-<TYPE>-pure.gguf as make_reference.sh writes them with the oracle.
Per fixture: the tensor names in file order; per type (and --pure): every tensor's type, the SHA-256 of the
concatenated tensor data (each tensor's bytes, no padding) and of the whole file.
"""
import hashlib, json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tensor_hashes import describe  # noqa: E402

FIXTURES = {"llama": "fx-llama-F32.gguf", "qwen2": "fx-qwen2-F32.gguf", "qwen3": "fx-qwen3-F32.gguf", "qwen3moe": "fx-qwen3moe-F16.gguf"}
TYPES = "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS".split()

ref = sys.argv[1]
out = {}
for fx, source in FIXTURES.items():
    entry = {"source": source, "names": None, "runs": {}}
    for t in TYPES:
        for suffix in ("", "-pure"):
            path = os.path.join(ref, f"{fx}-{t}{suffix}.gguf")
            d = describe(path)
            if entry["names"] is None: entry["names"] = d["names"]
            assert entry["names"] == d["names"], path
            entry["runs"][t + suffix] = {"types": " ".join(d["types"]), "data_sha256": d["data_sha256"],
                                         "file_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    out[fx] = entry
json.dump(out, sys.stdout, indent=1)
print()

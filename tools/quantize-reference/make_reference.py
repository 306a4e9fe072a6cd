#!/usr/bin/python3
"""Writes Engine.Tests/TestData/quantize/fixtures.json from llama.cpp's quantized fixtures.

    make_reference.py REF_DIR > Engine.Tests/TestData/quantize/fixtures.json
    make_reference.py --stories REF_DIR > Engine.Tests/TestData/quantize/stories260K-imatrix.json

REF_DIR holds <fixture>-<TYPE>.gguf and <fixture>-<TYPE>-pure.gguf as make_reference.sh writes them with the oracle,
and <fixture>-<TYPE>-imatrix.gguf, -imatrix-pure.gguf (and for llama -imatrix-dat.gguf) from llama-quantize --imatrix.
Per fixture: the tensor names in file order, the imatrix files' paths as llama-quantize recorded them; per type (and
--pure, and imatrix runs "Q4_K_M-imatrix", "Q4_K_M-imatrix-pure", "Q4_K_M-imatrix-dat"): every tensor's type, the
SHA-256 of the concatenated tensor data (each tensor's bytes, no padding) and of the whole file.
"""
import hashlib, json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tensor_hashes import describe  # noqa: E402

FIXTURES = {"llama": "fx-llama-F32.gguf", "qwen2": "fx-qwen2-F32.gguf", "qwen3": "fx-qwen3-F32.gguf", "qwen3moe": "fx-qwen3moe-F16.gguf"}
TYPES = "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS".split()

if sys.argv[1] == "--stories":
    # make_reference.py --stories REF_DIR: stories260K-<TYPE>-imatrix.gguf -> {"imatrix": path, "runs": {TYPE: ...}}
    ref = sys.argv[2]
    out = {"source": "models/stories260K.gguf", "imatrix": "Engine.Tests/Golden/imatrix/stories260K.ctx128.imatrix.gguf", "runs": {}}
    for t in TYPES:
        path = os.path.join(ref, f"stories260K-{t}-imatrix.gguf")
        d = describe(path)
        out["runs"][t] = {"types": " ".join(d["types"]), "data_sha256": d["data_sha256"],
                          "file_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    json.dump(out, sys.stdout, indent=1)
    print()
    sys.exit(0)

ref = sys.argv[1]
out = {}
for fx, source in FIXTURES.items():
    imatrix = "Engine.Tests/Golden/imatrix/" + source[:-len(".gguf")] + ".ctx128.imatrix.gguf"
    entry = {"source": source, "imatrix": imatrix, "names": None, "runs": {}}
    suffixes = ["", "-pure", "-imatrix", "-imatrix-pure"] + (["-imatrix-dat"] if fx == "llama" else [])
    if fx == "llama": entry["imatrix_dat"] = imatrix[:-len(".gguf")] + ".dat"
    for t in TYPES:
        for suffix in suffixes:
            path = os.path.join(ref, f"{fx}-{t}{suffix}.gguf")
            d = describe(path)
            if entry["names"] is None: entry["names"] = d["names"]
            assert entry["names"] == d["names"], path
            entry["runs"][t + suffix] = {"types": " ".join(d["types"]), "data_sha256": d["data_sha256"],
                                         "file_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    out[fx] = entry
json.dump(out, sys.stdout, indent=1)
print()

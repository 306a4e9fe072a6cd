#!/usr/bin/env python3
"""Control-vector test data: small llama.cpp control-vector GGUF files and llama.cpp's logits with them applied.

Writes into Engine.Tests/TestData/control-vectors/ (see the README.md there):
  *.cvec.gguf   control vectors as llama.cpp's cvector-generator writes them: general.architecture "controlvector",
                controlvector.model_hint, controlvector.layer_count, F32 1-D tensors "direction.N"; values normal(0, std)
                from numpy's RandomState(seed), so every run writes the same bytes.
  CASE.logits.f32  llama.cpp's logits (float32 little-endian, rows x n_vocab, row i after tokens[0..i]) for each case
  cases.json       what each case fed: model, tokens, control-vector options (llama.cpp's), logits file

usage: /usr/bin/python3 tools/control-vectors/make_control_vectors.py [--oracle /tmp/oracle]
Needs numpy and the oracle (llama_oracle.py, see its README); writes files with llama.cpp's own gguf-py
(the oracle's gguf_py.sh prints where it is), so the engine's GGUF writer plays no part in the reference.
"""
import argparse, json, os, subprocess, sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "Engine.Tests", "TestData", "control-vectors")

# The fixture prompt's first 16 ids ("Once upon a time, there was a little cat who"), stories260K's tokenizer,
# which the fx-* fixtures share.
TOKENS = "1 403 407 261 378 432 383 286 261 376 280 294 263 415 414 397"

MODELS = {
    "fx-llama-F32": os.path.join("Engine.Tests", "Fixtures", "fx-llama-F32.gguf"),
    "fx-qwen2-F32": os.path.join("Engine.Tests", "Fixtures", "fx-qwen2-F32.gguf"),
    "stories260K": os.path.join("models", "stories260K.gguf"),
}

# name: (model hint, width, {layer: seed}, std)
VECTORS = {
    "fx-llama.a": ("llama", 256, {1: 11}, 0.5),
    "fx-llama.b": ("llama", 256, {1: 12}, 0.5),
    "fx-qwen2.a": ("qwen2", 256, {1: 21}, 0.5),
    "stories260K.a": ("llama", 64, {1: 31, 2: 32, 3: 33, 4: 34}, 1.0),
    "stories260K.b": ("llama", 64, {2: 41, 4: 42}, 1.0),   # sparse: layers 1 and 3 absent
}

# name: (model, llama.cpp's control-vector options)
CASES = {
    "fx-llama-F32.a": ("fx-llama-F32", ["--control-vector", "fx-llama.a"]),
    "fx-llama-F32.a+b": ("fx-llama-F32", ["--control-vector", "fx-llama.a", "--control-vector-scaled", "fx-llama.b", "-0.7"]),
    "fx-qwen2-F32.a": ("fx-qwen2-F32", ["--control-vector-scaled", "fx-qwen2.a", "1.5"]),
    "stories260K.a": ("stories260K", ["--control-vector", "stories260K.a"]),
    "stories260K.a+b.2-3": ("stories260K", ["--control-vector-scaled", "stories260K.a", "0.5", "--control-vector", "stories260K.b",
                                            "--control-vector-layer-range", "2", "3"]),
    "stories260K.a.3-0": ("stories260K", ["--control-vector", "stories260K.a", "--control-vector-layer-range", "3", "0"]),
}


def vector_path(name):
    return os.path.join(OUT, name + ".cvec.gguf")


def write_vectors(gguf, np):
    for name, (hint, width, layers, std) in VECTORS.items():
        path = vector_path(name)
        writer = gguf.GGUFWriter(path + ".part", "controlvector")
        writer.add_string("controlvector.model_hint", hint)
        writer.add_int32("controlvector.layer_count", len(layers))
        for layer, seed in sorted(layers.items()):
            direction = np.random.RandomState(seed).normal(0.0, std, width).astype(np.float32)
            writer.add_tensor(f"direction.{layer}", direction)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(path + ".part", path)


def run_case(oracle, name, model, options):
    args = [a if a not in VECTORS else vector_path(a) for a in options]
    logits = os.path.join(OUT, name + ".logits.f32")
    cmd = [sys.executable, os.path.join(oracle, "llama_oracle.py"), "logits", "-m", os.path.join(REPO, MODELS[model]),
           "--tokens", TOKENS, "--all", "--kv-type", "f32", "--flash-attn", "off", "-t", "2", "-o", logits, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"oracle failed on {name}: {r.stderr[-800:]}")
    os.remove(logits + ".json")  # its metadata holds absolute paths; cases.json says the same portably
    result = json.loads(r.stdout.strip().splitlines()[-1])
    return {"name": name, "model": MODELS[model].replace(os.sep, "/"), "tokens": result["tokens"], "n_vocab": result["n_vocab"],
            "options": [a if a not in VECTORS else os.path.basename(vector_path(a)) for a in options],
            "logits_file": os.path.basename(logits), "argmax_last": result["argmax_last"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oracle", default="/tmp/oracle", help="folder of llama_oracle.py")
    args = ap.parse_args()
    gguf_py = subprocess.run([os.path.join(args.oracle, "gguf_py.sh")], check=True, capture_output=True, text=True).stdout.strip()
    sys.path.insert(0, gguf_py)
    import numpy as np
    import gguf
    os.makedirs(OUT, exist_ok=True)
    write_vectors(gguf, np)
    cases = [run_case(args.oracle, name, model, options) for name, (model, options) in CASES.items()]
    reference = "llama.cpp v0.5.0 (commit de3ff81) through llama_oracle.py logits --all: CPU, 2 threads, F32 KV cache, flash attention off"
    with open(os.path.join(OUT, "cases.json.part"), "w") as f:
        json.dump({"reference": reference, "logits_layout": "float32 little-endian, rows x n_vocab, row i = logits after feeding tokens[0..i]",
                   "cases": cases}, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(OUT, "cases.json.part"), os.path.join(OUT, "cases.json"))
    print(json.dumps([c["name"] for c in cases]))


if __name__ == "__main__":
    main()

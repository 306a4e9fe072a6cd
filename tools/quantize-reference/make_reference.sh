#!/bin/bash
# Quantizes the shared F32 fixtures (the MoE one is F16) to every type, plain and --pure, with llama.cpp's quantizer
# (the oracle), and again with each fixture's importance matrix (Engine.Tests/Golden/imatrix) through llama-quantize
# --imatrix (built from the oracle's commit; the oracle's driver passes no imatrix), plus the legacy .dat form of
# fx-llama's; then writes the reference the tests compare against. Usage: make_reference.sh [REF_DIR]
# LLAMA_BIN: the folder of llama-quantize and its libraries (default /tmp/llama-tools-ppl/build/bin).
set -euo pipefail
ref=${1:-/tmp/quant-ref}; mkdir -p "$ref"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${LLAMA_BIN:-/tmp/llama-tools-ppl/build/bin}
types="Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS"
for fx in llama qwen2 qwen3 qwen3moe; do
  in=/work/shared/fixtures/fx-$fx-F32.gguf; [ -f $in ] || in=/work/shared/fixtures/fx-$fx-F16.gguf
  for t in $types; do
    python3 /tmp/oracle/llama_oracle.py quantize $in "$ref/$fx-$t.gguf" $t -t 1 > /dev/null
    python3 /tmp/oracle/llama_oracle.py quantize $in "$ref/$fx-$t-pure.gguf" $t --pure -t 1 > /dev/null
  done
done
# The imatrix path is recorded in the output (quantize.imatrix.file): run from the repository root with the path the
# tests record (make_reference.py stores it), so the whole files can be compared.
cd "$repo"
for fx in llama qwen2 qwen3 qwen3moe; do
  in=/work/shared/fixtures/fx-$fx-F32.gguf; [ -f $in ] || in=/work/shared/fixtures/fx-$fx-F16.gguf
  im=Engine.Tests/Golden/imatrix/$(basename ${in%.gguf}).ctx128.imatrix.gguf
  for t in $types; do
    LD_LIBRARY_PATH=$bin $bin/llama-quantize --imatrix $im $in "$ref/$fx-$t-imatrix.gguf" $t 2 > /dev/null 2>&1
    LD_LIBRARY_PATH=$bin $bin/llama-quantize --imatrix $im --pure $in "$ref/$fx-$t-imatrix-pure.gguf" $t 2 > /dev/null 2>&1
    if [ $fx = llama ]; then
      LD_LIBRARY_PATH=$bin $bin/llama-quantize --imatrix ${im%.gguf}.dat $in "$ref/$fx-$t-imatrix-dat.gguf" $t 2 > /dev/null 2>&1
    fi
  done
done
# The repository's own model, so that a checkout without ../shared still checks the weighted 32-block quantizers (its
# 64- and 172-column rows send every type to Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL or F16).
for t in $types; do
  LD_LIBRARY_PATH=$bin $bin/llama-quantize --imatrix Engine.Tests/Golden/imatrix/stories260K.ctx128.imatrix.gguf \
    models/stories260K.gguf "$ref/stories260K-$t-imatrix.gguf" $t 2 > /dev/null 2>&1
done
/usr/bin/python3 "$here/make_reference.py" --stories "$ref" > "$repo/Engine.Tests/TestData/quantize/stories260K-imatrix.json.tmp" \
  && mv "$repo/Engine.Tests/TestData/quantize/stories260K-imatrix.json.tmp" "$repo/Engine.Tests/TestData/quantize/stories260K-imatrix.json"
# Written beside and renamed, so a failure (gguf-py needs numpy) leaves the old reference in place.
out="$repo/Engine.Tests/TestData/quantize/fixtures.json"
/usr/bin/python3 "$here/make_reference.py" "$ref" > "$out.tmp" && mv "$out.tmp" "$out"

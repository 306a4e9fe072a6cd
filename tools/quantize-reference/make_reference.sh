#!/bin/bash
# Quantizes the shared F32 fixtures (the MoE one is F16) to every type, plain and --pure, with llama.cpp's quantizer
# (the oracle), then writes the reference the tests compare against. Usage: make_reference.sh [REF_DIR]
set -euo pipefail
ref=${1:-/tmp/quant-ref}; mkdir -p "$ref"
here=$(cd "$(dirname "$0")" && pwd)
for fx in llama qwen2 qwen3 qwen3moe; do
  in=/work/shared/fixtures/fx-$fx-F32.gguf; [ -f $in ] || in=/work/shared/fixtures/fx-$fx-F16.gguf
  for t in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS; do
    python3 /tmp/oracle/llama_oracle.py quantize $in "$ref/$fx-$t.gguf" $t -t 1 > /dev/null
    python3 /tmp/oracle/llama_oracle.py quantize $in "$ref/$fx-$t-pure.gguf" $t --pure -t 1 > /dev/null
  done
done
/usr/bin/python3 "$here/make_reference.py" "$ref" > "$here/../../Engine.Tests/TestData/quantize/fixtures.json"

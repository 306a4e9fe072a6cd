#!/bin/bash
# The qwen2.5-1.5b F16 preset with an importance matrix: the F16 synthesized if missing, an imatrix from `engine imatrix`
# (2 chunks of 512 tokens of the docs), then each type with llama-quantize --imatrix and engine quantize --imatrix
# (2 threads each, the same relative imatrix path, which both record); hashes and wall times to WORK/results.tsv.
# Usage (from anywhere): tools/quantize-reference/bench_preset_imatrix.sh; TYPES, WORK, ENGINE, CONVERT, LLAMA_BIN override.
set -u
W=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/imbench}; mkdir -p $WORK; cd $WORK
[ -f text.txt ] || cat $W/docs/*.md $W/README.md > text.txt
E=${ENGINE:-$W/Engine.Cli/bin/Release/net10.0/engine}
C=${CONVERT:-$W/tools/convert/bin/Release/net10.0/engine-convert}
B=${LLAMA_BIN:-/tmp/llama-tools-ppl/build/bin}
IN=/tmp/bench/qwen2.5-1.5b-F16.gguf
[ -f $IN ] || $C synth --preset qwen2.5-1.5b --type F16 -o $IN > synth.log 2>&1
echo "input $(sha256sum $IN | cut -c1-64)" > results.tsv
s=$(date +%s.%N)
[ -f qwen2.5-1.5b.imatrix.gguf ] || $E imatrix --model $IN --file text.txt --ctx 512 --chunks 2 --out qwen2.5-1.5b.imatrix.gguf --threads 2 > imatrix.log 2>&1
e=$(date +%s.%N); echo "imatrix $(sha256sum qwen2.5-1.5b.imatrix.gguf | cut -c1-64) $(echo "$e - $s" | bc)" >> results.tsv
for t in ${TYPES:-Q4_K_M IQ4_XS}; do
  s=$(date +%s.%N); LD_LIBRARY_PATH=$B $B/llama-quantize --imatrix qwen2.5-1.5b.imatrix.gguf $IN ref.gguf $t 2 > ref-$t.log 2>&1; e=$(date +%s.%N)
  ref=$(sha256sum ref.gguf | cut -c1-64); tref=$(echo "$e - $s" | bc); rm -f ref.gguf
  s=$(date +%s.%N); $E quantize $IN ours.gguf $t --imatrix qwen2.5-1.5b.imatrix.gguf --threads 2 > /dev/null 2> ours-$t.log; e=$(date +%s.%N)
  ours=$(sha256sum ours.gguf | cut -c1-64); size=$(stat -c %s ours.gguf); tours=$(echo "$e - $s" | bc); rm -f ours.gguf
  printf "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\n" "$t" "$ref" "$ours" "$size" "$tref" "$tours" "$( [ $ref = $ours ] && echo identical || echo DIFFERENT)" >> results.tsv
done
echo finished >> results.tsv

#!/bin/bash
# For each type: llama.cpp's quantizer (the oracle, 2 threads) then ours (2 threads) on the qwen2.5-1.5b F16 preset;
# prints type, llama.cpp file sha256, our sha256, size, llama.cpp seconds, our seconds, identical|DIFFERENT.
# TYPES="Q4_K_M Q8_0" limits the types; ENGINE, WORK and OUT override the binary, scratch folder and result file.
mkdir -p ${WORK:-/tmp/quant-bench}
IN=${IN:-/tmp/bench/qwen2.5-1.5b-F16.gguf}
E=${ENGINE:-Engine.Cli/bin/Release/net10.0/engine}
out=${OUT:-/tmp/quant-bench/results.tsv}
for t in ${TYPES:-Q4_K_M Q8_0 Q4_0 Q6_K IQ4_XS Q5_K_M Q3_K_M Q2_K Q4_1 Q5_0 Q5_1 Q3_K_S Q3_K_L Q4_K_S Q5_K_S IQ4_NL}; do
  s=$(date +%s.%N); python3 /tmp/oracle/llama_oracle.py quantize $IN ${WORK:-/tmp/quant-bench}/ref.gguf $t -t 2 > /dev/null 2>${WORK:-/tmp/quant-bench}/oracle.err; e=$(date +%s.%N)
  ref=$(sha256sum ${WORK:-/tmp/quant-bench}/ref.gguf | cut -c1-64); rm -f ${WORK:-/tmp/quant-bench}/ref.gguf
  tref=$(echo "$e - $s" | bc)
  s=$(date +%s.%N); $E quantize $IN ${WORK:-/tmp/quant-bench}/ours.gguf $t --threads 2 > /dev/null 2>${WORK:-/tmp/quant-bench}/ours.err; e=$(date +%s.%N)
  ours=$(sha256sum ${WORK:-/tmp/quant-bench}/ours.gguf | cut -c1-64); size=$(stat -c %s ${WORK:-/tmp/quant-bench}/ours.gguf); rm -f ${WORK:-/tmp/quant-bench}/ours.gguf
  tours=$(echo "$e - $s" | bc)
  printf "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\n" "$t" "$ref" "$ours" "$size" "$tref" "$tours" "$( [ $ref = $ours ] && echo identical || echo DIFFERENT)" | tee -a $out
done
echo finished >> $out

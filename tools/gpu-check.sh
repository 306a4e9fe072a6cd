#!/usr/bin/env bash
# Checks the GPU backend on a real NVIDIA card, on a machine that has neither the .NET SDK nor a package registry.
#
#   tools/gpu-check.sh prepare [--covering-fixtures] [--standalone] [--no-trim]
#       Here, with the SDK: publishes `engine` and `engine-convert` self-contained for linux-x64, and packs them with
#       every fixture with goldens (../shared/fixtures) that the working tree lacks (those in Engine.Tests/Fixtures travel with
#       the tree; --standalone packs them too) and the tokenizers that synthesis needs into
#       .gpu-check/gpu-check.tar.xz (git-ignored). Prints the archive's size next to the working tree's.
#   tools/gpu-check.sh run [--device cuda] [--quick] [--no-bench] [--budget SECONDS]
#       There (carry .gpu-check): unpacks the archive and, with no test runner,
#       1. compares every packed fixture's logits and greedy tokens with llama.cpp's goldens (`engine golden`),
#       2. synthesizes the Qwen2.5-1.5B and Llama-3.1-8B shapes (Q4_K_M, F16) and runs `engine bench` on each,
#       3. prints one summary table; it and the logs go to $OUT (else .gpu-check/out).
#       --device: cuda (default), opencl or ilgpu-cpu (ILGPU's CPU simulator: a smoke test of this script where there
#       is no GPU). --quick: three fixtures and two tiny synthesized shapes instead of the real ones.
#       Every step has a time limit inside --budget (default 480 s); what did not fit is printed as skipped.
#
# docs/gpu.md ("Checking a real GPU: tools/gpu-check.sh") says how to run it and what the sizes are.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$here/.gpu-check"
archive="$state/gpu-check.tar.xz"
device_budget_bytes=$((64 * 1024 * 1024))

# --covering-fixtures: every architecture (llama, tied llama, qwen2, qwen3, qwen3moe, qwen2moe, llama MoE)
# and every weight type the fixtures have (F32, F16, BF16, the twelve block types, the Q4_K_M/Q5_K_M mixes) at
# least once, each architecture with one float-weight file (tight bounds) where the fixtures have one.
covering_fixtures=(
  fx-llama-F32 fx-llama-F16 fx-llama-BF16 fx-llama-Q2_K fx-llama-Q3_K fx-llama-Q4_0 fx-llama-Q4_1 fx-llama-Q4_K
  fx-llama-Q5_0 fx-llama-Q5_1 fx-llama-Q5_K fx-llama-Q6_K fx-llama-Q8_0 fx-llama-IQ4_NL fx-llama-IQ4_XS
  fx-llama-Q4_K_M fx-llama-Q5_K_M
  fx-llama-tied-F16 fx-qwen2-F16 fx-qwen3-BF16 fx-qwen3moe-F16 fx-qwen3moe-Q4_K_M fx-qwen2moe-Q8_0 fx-llamamoe-Q8_0
)
# --quick: one exact (F32), one K-quant mix, one per-head-norm architecture; seconds each on the CPU simulator.
quick_fixtures=(fx-llama-F32 fx-llama-Q4_K_M fx-qwen3-BF16)
vocab_files=(ggml-vocab-qwen2.gguf ggml-vocab-llama-bpe.gguf ggml-vocab-llama-spm.gguf)

die() { echo "gpu-check: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

prepare() {
  # All fixtures by default: xz stores what they share once, so all 40 cost 0.2 MiB more than the covering 24.
  local all_fixtures=1 trim=1 standalone=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --covering-fixtures) all_fixtures=0 ;;
      --no-trim) trim=0 ;;
      --standalone) standalone=1 ;;
      *) die "prepare: unknown option '$1' (options: --covering-fixtures, --standalone, --no-trim)" ;;
    esac
    shift
  done
  command -v dotnet >/dev/null || die "prepare needs the .NET SDK (dotnet) on the PATH"
  command -v xz >/dev/null || die "prepare needs xz"
  local shared="${ENGINE_SHARED_DIR:-$here/../shared}"
  [ -d "$shared/fixtures" ] || die "no fixtures at $shared/fixtures: set ENGINE_SHARED_DIR to the shared reference folder"

  local stage="$state/stage"
  rm -rf "$state" && mkdir -p "$stage/engine" "$stage/convert" "$stage/fixtures" "$stage/vocab" || die "cannot create $stage"

  # Trimming is partial: only the framework's own assemblies that declare themselves trimmable are trimmed; the
  # engine's assemblies and ILGPU (which reads kernels' IL and emits code at run time) are kept whole, and so is
  # System.Private.CoreLib, where ILGPU finds by reflection the methods it remaps (tools/gpu-check.targets). Reflection-
  # based JSON stays on because `run --json` and `tokenize --json` serialize anonymous types.
  local publish=(-c Release -r linux-x64 --self-contained -p:DebugType=none -p:GenerateDocumentationFile=false
                 -p:InvariantGlobalization=true -p:SatelliteResourceLanguages=en)
  [ "$trim" = 1 ] && publish+=(-p:PublishTrimmed=true -p:TrimMode=partial -p:JsonSerializerIsReflectionEnabledByDefault=true
                               -p:SuppressTrimAnalysisWarnings=true -p:CustomAfterMicrosoftCommonTargets="$here/tools/gpu-check.targets")
  echo "gpu-check: publishing engine and engine-convert (linux-x64, self-contained$([ "$trim" = 1 ] && echo ", framework trimmed"))"
  dotnet publish "$here/Engine.Cli/Engine.Cli.csproj" "${publish[@]}" -o "$stage/engine" >"$state/publish-engine.log" 2>&1 \
    || { tail -20 "$state/publish-engine.log"; die "publishing engine failed (log: $state/publish-engine.log)"; }
  dotnet publish "$here/tools/convert/Engine.Convert.csproj" "${publish[@]}" -o "$stage/convert" >"$state/publish-convert.log" 2>&1 \
    || { tail -20 "$state/publish-convert.log"; die "publishing engine-convert failed (log: $state/publish-convert.log)"; }
  # Debugger and crash-dump support: nothing a run uses.
  rm -f "$stage"/{engine,convert}/{createdump,libmscordaccore.so,libmscordbi.so}

  local names=() name
  if [ "$all_fixtures" = 1 ]; then
    for f in "$shared"/fixtures/fx-*.golden.json "$here"/Engine.Tests/Fixtures/fx-*.golden.json; do
      name=$(basename "$f" .golden.json)
      [[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
    done
  else
    names=("${covering_fixtures[@]}")
  fi
  local packed=0 tracked
  tracked=" $(git -C "$here" ls-files Engine.Tests/Fixtures | xargs -n1 basename | tr '\n' ' ') "
  for name in "${names[@]}"; do
    echo "$name" >>"$stage/fixtures.txt"
    if [ "$standalone" = 0 ] && [[ "$tracked" == *" $name.gguf "* && "$tracked" == *" $name.golden.json "* && "$tracked" == *" $name.logits.f32 "* ]]; then
      continue # travels with the working tree
    fi
    packed=$((packed + 1))
    local from=""
    for dir in "$shared/fixtures" "$here/Engine.Tests/Fixtures"; do
      [ -f "$dir/$name.gguf" ] && [ -f "$dir/$name.golden.json" ] && [ -f "$dir/$name.logits.f32" ] && { from=$dir; break; }
    done
    [ -n "$from" ] || die "fixture $name (.gguf, .golden.json, .logits.f32) is in neither $shared/fixtures nor Engine.Tests/Fixtures"
    cp "$from/$name.gguf" "$from/$name.golden.json" "$from/$name.logits.f32" "$stage/fixtures/"
  done
  for v in "${vocab_files[@]}"; do
    cp "$shared/models/ggml-vocab/$v" "$stage/vocab/" || die "synthesis needs $shared/models/ggml-vocab/$v"
  done
  {
    echo "commit $(git -C "$here" rev-parse HEAD 2>/dev/null)$(git -C "$here" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "made $(date -u +%Y-%m-%dT%H:%M:%SZ), trim=$trim, fixtures: ${#names[@]} ($packed packed, the rest from Engine.Tests/Fixtures)"
  } >"$stage/MANIFEST"

  local fixture_bytes binary_bytes
  fixture_bytes=$(du -cb "$stage/fixtures" | tail -1 | cut -f1)
  binary_bytes=$(du -cb "$stage/engine" "$stage/convert" | tail -1 | cut -f1)
  echo "gpu-check: packing (binaries $(mib "$binary_bytes"), $packed of the ${#names[@]} fixtures $(mib "$fixture_bytes"), tokenizers)"
  # -9: a 64 MiB window, so the two runtimes and the fixtures' shared bytes are stored once.
  tar -C "$stage" -cf - . | xz -9 -T0 >"$archive" || die "packing $archive failed"
  rm -rf "$stage"

  local archive_bytes tree_bytes
  archive_bytes=$(stat -c %s "$archive")
  tree_bytes=$(git -C "$here" ls-files -z | (cd "$here" && xargs -0 du -cb 2>/dev/null) | awk '$2 == "total" { t += $1 } END { print t + 0 }')
  echo "gpu-check: $archive: $(mib "$archive_bytes")"
  echo "gpu-check: working tree (tracked files): $(mib "$tree_bytes"); together $(mib $((archive_bytes + tree_bytes))) of the $(mib "$device_budget_bytes") that travel"
  if [ $((archive_bytes + tree_bytes)) -gt "$device_budget_bytes" ]; then
    echo "gpu-check: WARNING: over the limit; the device tool will refuse the call. Shrink the working tree (Engine.Tests/Fixtures is most of it); --covering-fixtures saves little." >&2
  fi
  echo "gpu-check: next, on the GPU machine (carry [\".gpu-check\"]): tools/gpu-check.sh run"
}

# ---------------------------------------------------------------- run

run_main() {
  local device=cuda quick=0 bench=1 budget=480
  while [ $# -gt 0 ]; do
    case "$1" in
      --device) [ $# -ge 2 ] || die "--device needs a value"; device=$2; shift ;;
      --quick) quick=1 ;;
      --no-bench) bench=0 ;;
      --budget) [ $# -ge 2 ] || die "--budget needs seconds"; budget=$2; shift ;;
      *) die "run: unknown option '$1' (options: --device D, --quick, --no-bench, --budget SECONDS)" ;;
    esac
    shift
  done
  case "$device" in cuda|opencl|ilgpu-cpu|cpu) ;; *) die "--device must be cuda, opencl, ilgpu-cpu or cpu, got '$device'" ;; esac
  [ -f "$archive" ] || die "no $archive: run 'tools/gpu-check.sh prepare' where the SDK is, and carry .gpu-check"
  command -v timeout >/dev/null || die "run needs coreutils' timeout"

  local started=$SECONDS
  out_dir="${OUT:-$state/out}"
  mkdir -p "$out_dir" || die "cannot create $out_dir"
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || die "cannot create a temporary folder"
  trap 'rm -rf "$work"' EXIT
  logs="$work/logs"; mkdir -p "$logs" "$work/pkg" "$work/models"
  skipped=()
  summary="$logs/summary.txt"

  # xz, else Python's lzma module: one of them is on any machine that has a CUDA toolkit image.
  if command -v xz >/dev/null; then
    tar -C "$work/pkg" -xJf "$archive" || die "unpacking $archive failed"
  elif command -v python3 >/dev/null; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$archive" "$work/pkg" \
      || die "unpacking $archive with python3 failed"
  else
    die "unpacking needs xz or python3"
  fi
  engine="$work/pkg/engine/engine"
  convert="$work/pkg/convert/engine-convert"
  [ -x "$engine" ] && [ -x "$convert" ] || die "the archive lacks engine/engine or convert/engine-convert: prepare it again"
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  # Seconds left of the budget, keeping `reserve` for the steps after this one.
  left() { echo $((budget - (SECONDS - started) - ${1:-0})); }

  {
    echo "gpu-check run: device $device$([ "$quick" = 1 ] && echo ", quick"), budget ${budget} s, $(cat "$work/pkg/MANIFEST" | tr '\n' ';')"
    echo "host: $(uname -srm), $(nproc) cores"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    timeout -k 5 60 "$engine" devices 2>&1
  } | tee "$logs/devices.log"

  # 1. Fixtures, all in one process on one device, so ILGPU compiles each kernel once.
  # The archive's fixtures, and those of Engine.Tests/Fixtures that travelled with the working tree, in one folder.
  local names=() f src
  mkdir -p "$work/fixtures"
  while read -r f; do
    [ "$quick" = 1 ] && [[ " ${quick_fixtures[*]} " != *" $f "* ]] && continue
    for src in "$work/pkg/fixtures" "$here/Engine.Tests/Fixtures" ""; do
      [ -n "$src" ] && [ -f "$src/$f.gguf" ] && [ -f "$src/$f.golden.json" ] && [ -f "$src/$f.logits.f32" ] && break
    done
    if [ -z "$src" ]; then skipped+=("fixture $f: in neither the archive nor Engine.Tests/Fixtures"); continue; fi
    ln -s "$src/$f.gguf" "$src/$f.golden.json" "$src/$f.logits.f32" "$work/fixtures/"
    names+=("$f")
  done <"$work/pkg/fixtures.txt"
  local fixture_limit=$(( $(left 60) < 300 ? $(left 60) : 300 ))
  [ "$bench" = 0 ] && fixture_limit=$(left 10)
  echo "== fixtures: ${#names[@]} on $device (limit ${fixture_limit} s)"
  if [ "${#names[@]}" -gt 0 ] && [ "$fixture_limit" -gt 10 ]; then
    local only; only=$(IFS=,; echo "${names[*]}")
    timeout -k 10 "$fixture_limit" "$engine" golden --fixtures "$work/fixtures" --only "$only" --device "$device" --json \
      >"$logs/fixtures.jsonl" 2>"$logs/fixtures.stderr"
    local rc=$?
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && skipped+=("fixtures after the ${fixture_limit} s limit (see fixtures.log)")
    cat "$logs/fixtures.jsonl"
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "engine golden exited with $rc:"; tail -5 "$logs/fixtures.stderr"; }
  else
    skipped+=("fixtures: no time left")
  fi

  # 2. Synthesized real shapes, benchmarked one at a time; each file is deleted before the next is made.
  bench_rows=()
  if [ "$bench" = 1 ]; then run_benches; else skipped+=("benchmarks (--no-bench)"); fi

  write_summary "${names[@]}"
  cat "$summary"
  # At most 8 files come back from $OUT.
  cp "$summary" "$out_dir/summary.txt"
  cat "$logs/devices.log" >"$out_dir/devices.log"
  { cat "$logs/fixtures.jsonl" 2>/dev/null; echo "-- stderr"; cat "$logs/fixtures.stderr" 2>/dev/null; } >"$out_dir/fixtures.log"
  cat "$logs"/synth-*.log >"$out_dir/synth.log" 2>/dev/null
  cat "$logs"/bench-*.log >"$out_dir/bench.log" 2>/dev/null
  echo "gpu-check: summary and logs in $out_dir ($((SECONDS - started)) s)"
  grep -q '| FAIL\|| ERROR\|| NOT RUN' "$summary" && return 3
  return 0
}

# Model shapes to benchmark: preset, type, vocabulary file, expected file size in GiB (for the disk check).
run_benches() {
  local shapes parallel_flags=()
  if [ "$quick" = 1 ]; then
    shapes=("test-llama Q4_K_M ggml-vocab-llama-spm.gguf" "test-llama F16 ggml-vocab-llama-spm.gguf")
    bench_args=(-p 16 -n 8 -r 1)
  else
    shapes=("qwen2.5-1.5b Q4_K_M ggml-vocab-qwen2.gguf" "qwen2.5-1.5b F16 ggml-vocab-qwen2.gguf"
            "llama3.1-8b Q4_K_M ggml-vocab-llama-bpe.gguf" "llama3.1-8b F16 ggml-vocab-llama-bpe.gguf")
    bench_args=(-p 256 -n 64 -r 2)
  fi
  if timeout 30 "$engine" bench --help 2>/dev/null | grep -q -- '--parallel'; then
    parallel_flags=(4 16)
  else
    skipped+=("bench --parallel 4/16: this engine's bench has no --parallel")
  fi
  local shape preset type vocab model log secs par
  for shape in "${shapes[@]}"; do
    read -r preset type vocab <<<"$shape"
    model="$work/models/$preset-$type.gguf"
    # Synthesis takes what it needs; a bench keeps 30 s back for the summary.
    local limit; limit=$(left 30)
    if [ "$limit" -lt 30 ]; then skipped+=("$preset $type: no time left"); continue; fi
    log="$logs/synth-$preset-$type.log"
    echo "== synth $preset $type (limit $((limit < 180 ? limit : 180)) s)"
    secs=$SECONDS
    if ! timeout -k 10 $((limit < 180 ? limit : 180)) "$convert" synth --preset "$preset" --type "$type" -o "$model" \
         --vocab "$work/pkg/vocab/$vocab" --force >"$log" 2>&1; then
      tail -3 "$log"; skipped+=("$preset $type: synthesis failed or timed out (synth.log)"); rm -f "$model"; continue
    fi
    echo "   $(stat -c %s "$model" | awk '{ printf "%.2f GiB", $1 / 1073741824 }') in $((SECONDS - secs)) s"
    for par in 1 "${parallel_flags[@]}"; do
      limit=$(left 20)
      if [ "$limit" -lt 20 ]; then skipped+=("bench $preset $type x$par: no time left"); continue; fi
      [ "$limit" -gt 150 ] && limit=150
      log="$logs/bench-$preset-$type-p$par.log"
      echo "== bench $preset $type$([ "$par" != 1 ] && echo " --parallel $par") on $device (limit $limit s)"
      local extra=(); [ "$par" != 1 ] && extra=(--parallel "$par")
      timeout -k 10 "$limit" "$engine" bench --model "$model" --device "$device" "${bench_args[@]}" "${extra[@]}" --json >"$log.json" 2>"$log"
      local rc=$?
      cat "$log.json" >>"$log"
      bench_rows+=("$(bench_row "$preset" "$type" "$par" "$rc" "$log.json")")
      echo "   ${bench_rows[-1]}"
    done
    rm -f "$model"
  done
}

# One number of engine bench --json: "key": number, inside the object "within" when given (pp, tg), else the first.
json_number() {
  tr -d ' \n' <"$1" | { if [ -n "$2" ]; then sed "s/.*\"$2\":{//"; else cat; fi; } \
    | grep -o "\"$3\":[-0-9.eE+]*" | head -1 | cut -d: -f2
}

bench_row() {
  local preset=$1 type=$2 par=$3 rc=$4 json=$5
  if [ "$rc" != 0 ]; then
    local why="exit $rc"; [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out"
    printf '%s|%s|%s|%s|||||' "$preset" "$type" "$par" "ERROR ($why, see bench.log)"
    return
  fi
  local pp tg bytes bw share nominal
  pp=$(json_number "$json" pp tokens_per_second)
  tg=$(json_number "$json" tg tokens_per_second)
  bytes=$(json_number "$json" "" weight_bytes_per_token)
  bw=$(json_number "$json" "" memory_bandwidth_bytes_per_second)
  share=$(json_number "$json" tg bandwidth_share)
  # The H200's nominal 4.8 TB/s, beside the device-to-device copy that engine bench measures.
  nominal=$(awk -v t="$tg" -v b="$bytes" 'BEGIN { if (t == "" || b == "") print ""; else printf "%.1f%%", 100 * t * b / 4.8e12 }')
  printf '%s|%s|%s|ok|%s|%s|%s|%s|%s' "$preset" "$type" "$par" "$pp" "$tg" \
    "$(awk -v b="$bw" 'BEGIN { if (b != "") printf "%.0f", b / 1e9 }')" \
    "$(awk -v s="$share" 'BEGIN { if (s != "") printf "%.1f%%", 100 * s }')" "$nominal"
}

write_summary() {
  {
    echo "# gpu-check on $device: $(head -1 "$work/pkg/MANIFEST")"
    echo
    echo "| fixture | verdict | weights | max abs diff | NMSE | top equal | greedy equal | s | why |"
    echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    local name line
    for name in "$@"; do
      line=$(grep -F "\"model\":\"$name.gguf\"" "$logs/fixtures.jsonl" 2>/dev/null | head -1)
      if [ -z "$line" ]; then echo "| $name | NOT RUN | | | | | | | |"; continue; fi
      field() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" <<<"$line" | tr -d '"'; }
      sci() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "inf"; else printf "%.2e", v }'; }
      echo "| $name | $(field verdict) | $(field weights) | $(sci "$(field max_abs_diff)") | $(sci "$(field nmse)") | $(field top_equal)/$(field rows) | $(field greedy_equal_prefix)/$(field greedy_count) | $(field seconds) | $(field why) |"
    done
    echo
    echo "verdict: pass = within the fixtures README's bound; pass-device = within the GPU backend's documented bound"
    echo "(docs/gpu.md) only; FAIL = outside both; ERROR = could not be checked (fixtures.log)."
    echo
    if [ "${#bench_rows[@]}" -gt 0 ]; then
      echo "| model | type | sequences | status | pp t/s | tg t/s | measured GB/s | tg share of measured | tg share of 4.8 TB/s |"
      echo "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
      local row
      for row in "${bench_rows[@]}"; do echo "| ${row//|/ | } |"; done
      echo
      echo "tg share: generated tokens/s x weight bytes per token over the bandwidth (measured: engine bench's device copy)."
    fi
    if [ "${#skipped[@]}" -gt 0 ]; then
      echo
      echo "skipped:"
      local s; for s in "${skipped[@]}"; do echo "- $s"; done
    fi
    echo
    echo "total $((SECONDS - started)) s of a ${budget} s budget"
  } >"$summary"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run_main "$@"; exit $? ;;
  *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

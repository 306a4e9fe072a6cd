#!/usr/bin/env bash
# Proves the NuGet packages work outside the repository, the way a user gets them:
#   1. packs Engine.Formats, Engine, Engine.Gpu and the engine tool (Engine.Cli) into a local feed, with a version
#      unique to this run (0.1.0-check.<time>.<pid>) so no package cached by an earlier run can stand in for them;
#   2. checks each package's contents (readme, licence, commit, the tool's model and runtime settings) and that
#      packing the same build twice gives byte-identical files;
#   3. builds and runs a fresh console project, outside the repository, that gets Engine from that feed only and
#      prints a greedy story from models/stories260K.gguf through the public API;
#   4. installs the tool into a temporary tool path and runs `engine run` from another folder, where only the model
#      that travels inside the tool can be found.
# Usage: tools/package-check.sh   (needs the .NET 10 SDK and the package source the machine restores from)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "package-check: $*"; }
fail() { echo "package-check: FAILED: $*" >&2; exit 1; }

for tool in dotnet git unzip; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not on the PATH (.ci/run installs what CI needs)"
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
packages=(Engine.Formats Engine Engine.Gpu Engine.Cli)
prefix=$(sed -nE 's|.*<VersionPrefix>(.+)</VersionPrefix>.*|\1|p' "$repo/Packaging.props")
[ -n "$prefix" ] || fail "no <VersionPrefix> in $repo/Packaging.props"
suffix="check.$(date -u +%Y%m%d%H%M%S).$$"
version="$prefix-$suffix"
cache=$(dotnet nuget locals global-packages --list | sed -E 's/^[^:]*: *//')
[ -n "$cache" ] || fail "'dotnet nuget locals global-packages --list' named no global packages folder"

work=$(mktemp -d "${TMPDIR:-/tmp}/engine-package-check.XXXXXX")
cleanup() {
  rm -rf "$work"
  # The consumer's restore put this run's packages into the global cache; nothing will ever ask for them again.
  for id in "${packages[@]}"; do
    rm -rf "${cache:?}/${id,,}/$version"
    rmdir --ignore-fail-on-non-empty "$cache/${id,,}" 2>/dev/null || true
  done
}
trap cleanup EXIT
work=$(cd "$work" && pwd -P)
case "$work/" in "$repo"/*|"$(cd "$repo" && pwd -P)"/*) fail "the temporary folder $work is inside the repository $repo; set TMPDIR to a folder outside it" ;; esac

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
started=$(now_ms)
stage_started=$started
stage() { stage_started=$(now_ms); say "[$1] $2"; }
stage_done() { say "    done in $(seconds_since "$stage_started") s"; }
indent() { sed 's/^/package-check:     /' <<<"$1"; }
run_logged() { # run_logged LOG COMMAND...: quiet on success, the whole log on failure
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; return 1; fi
}

say "version $version, working in $work"

# 1. Pack. The tool's pack builds all four projects; the libraries are then packed from that build. The build goes
# to a separate artifacts folder, so the check compiles from source and leaves the working tree's bin/ and obj/ alone.
stage 1/4 "packing ${packages[*]}"
feed=$work/feed
artifacts=$work/artifacts
run_logged "$work/pack-Engine.Cli.log" dotnet pack "$repo/Engine.Cli/Engine.Cli.csproj" -c Release -o "$feed" \
  --artifacts-path "$artifacts" -p:VersionSuffix="$suffix" \
  || fail "dotnet pack Engine.Cli failed (log above)"
for id in Engine.Formats Engine Engine.Gpu; do
  run_logged "$work/pack-$id.log" dotnet pack "$repo/$id/$id.csproj" -c Release -o "$feed" --no-build \
    --artifacts-path "$artifacts" -p:VersionSuffix="$suffix" \
    || fail "dotnet pack $id failed (log above)"
done
warnings=$(grep -hE "warning [A-Z]+[0-9]+" "$work"/pack-*.log | sed -E 's/^ *//' | sort -u || true)
[ -z "$warnings" ] || indent "$warnings"
for id in "${packages[@]}"; do
  [ -f "$feed/$id.$version.nupkg" ] || fail "$feed/$id.$version.nupkg was not created"
  [ -f "$feed/$id.$version.snupkg" ] || fail "$feed/$id.$version.snupkg (symbols) was not created"
  say "    $id.$version.nupkg $(stat -c %s "$feed/$id.$version.nupkg") bytes"
done
stage_done

# 2. What is inside. A package that lost its readme, licence or commit, or a tool that lost its model or its
# TieredCompilation setting, still installs and runs somewhere: only looking inside catches it.
stage 2/4 "checking package contents and reproducibility"
commit=$(git -C "$repo" rev-parse HEAD)
for id in "${packages[@]}"; do
  nupkg=$feed/$id.$version.nupkg
  listing=$(unzip -Z1 "$nupkg")
  nuspec=$(unzip -p "$nupkg" "$id.nuspec")
  for file in README.md LICENSE; do
    grep -qx "$file" <<<"$listing" || fail "$id has no $file at its root"
  done
  grep -q '<license type="expression">MIT</license>' <<<"$nuspec" || fail "$id's nuspec does not declare the MIT licence"
  grep -q '<readme>README.md</readme>' <<<"$nuspec" || fail "$id's nuspec does not name its readme"
  grep -q "<repository type=\"git\" commit=\"$commit\"" <<<"$nuspec" || fail "$id's nuspec does not name commit $commit"
done
tool_files=$(unzip -Z1 "$feed/Engine.Cli.$version.nupkg")
for file in engine.dll DotnetToolSettings.xml models/stories260K.gguf models/LICENSE-stories260K models/PROVENANCE.md; do
  grep -qx "tools/net10.0/any/$file" <<<"$tool_files" || fail "the tool package has no tools/net10.0/any/$file"
done
unzip -p "$feed/Engine.Cli.$version.nupkg" tools/net10.0/any/engine.runtimeconfig.json | grep -q '"System.Runtime.TieredCompilation": false' \
  || fail "the tool's engine.runtimeconfig.json lost TieredCompilation=false (Engine.Cli.csproj)"
cmp -s "$repo/models/stories260K.gguf" <(unzip -p "$feed/Engine.Cli.$version.nupkg" tools/net10.0/any/models/stories260K.gguf) \
  || fail "the tool's models/stories260K.gguf differs from the repository's"
# Pack the same build again: deterministic packing (the commit's time on every entry) gives the same bytes.
run_logged "$work/repack.log" dotnet pack "$repo/Engine/Engine.csproj" -c Release -o "$work/feed-again" --no-build \
  --artifacts-path "$artifacts" -p:VersionSuffix="$suffix" || fail "packing Engine a second time failed"
cmp -s "$feed/Engine.$version.nupkg" "$work/feed-again/Engine.$version.nupkg" \
  || fail "packing the same build of Engine twice gave different bytes: the pack is not deterministic"
say "    readme, licence, commit ${commit:0:12}, tool model and runtimeconfig present; repack byte-identical"
stage_done

# 3. A fresh console project that knows nothing of the repository: its folder is outside it (no Directory.Build.props,
# Directory.Packages.props or nuget.config to inherit), and its nuget.config takes Engine* from the local feed only.
stage 3/4 "building and running a fresh console project that references Engine $version"
consumer=$work/consumer
mkdir -p "$consumer"
dir=$consumer
while :; do
  for inherited in Directory.Build.props Directory.Build.targets Directory.Packages.props; do
    [ ! -e "$dir/$inherited" ] || fail "$dir/$inherited would be imported by the consumer project; set TMPDIR to a clean folder"
  done
  [ "$dir" != / ] || break
  dir=$(dirname "$dir")
done
# Everything that is not Engine comes from the sources this machine already restores from.
mapfile -t upstream < <(cd "$consumer" && dotnet nuget list source --format Short | sed -nE 's/^ *E[A-Za-z]* +//p')
[ "${#upstream[@]}" -gt 0 ] || fail "no enabled NuGet source is configured on this machine ('dotnet nuget list source')"
{
  echo '<?xml version="1.0" encoding="utf-8"?>'
  echo '<configuration>'
  echo '  <packageSources>'
  echo '    <clear />'
  echo "    <add key=\"engine-local\" value=\"$feed\" />"
  for i in "${!upstream[@]}"; do echo "    <add key=\"upstream$i\" value=\"${upstream[$i]}\" />"; done
  echo '  </packageSources>'
  echo '  <packageSourceMapping>'
  echo '    <clear />'
  echo '    <packageSource key="engine-local"><package pattern="Engine" /><package pattern="Engine.*" /></packageSource>'
  for i in "${!upstream[@]}"; do echo "    <packageSource key=\"upstream$i\"><package pattern=\"*\" /></packageSource>"; done
  echo '  </packageSourceMapping>'
  echo '</configuration>'
} >"$consumer/nuget.config"
cat >"$consumer/Consumer.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Engine" Version="$version" />
  </ItemGroup>
</Project>
EOF
cat >"$consumer/Program.cs" <<'EOF'
using Engine;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: Consumer MODEL.gguf");
    return 2;
}
const string prompt = "Once upon a time";
using var model = Model.Load(args[0]);
using var session = model.CreateSession();
Console.Write(prompt);
await foreach (var token in session.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = 64 }))
    Console.Write(token.Text);
Console.WriteLine();
return 0;
EOF
run_logged "$work/consumer-build.log" dotnet build "$consumer/Consumer.csproj" -c Release -o "$consumer/out" \
  || fail "the console project that references Engine $version did not build (log above)"
warnings=$(grep -hE "warning [A-Z]+[0-9]+" "$work/consumer-build.log" | sed -E 's/^ *//' | sort -u || true)
[ -z "$warnings" ] || indent "$warnings"
resolved=$(grep -o "\"Engine/$version\"" "$consumer/obj/project.assets.json" | head -n 1)
[ -n "$resolved" ] || fail "the console project did not resolve Engine $version (see $consumer/obj/project.assets.json)"
grep -q "\"Engine.Formats/$version\"" "$consumer/obj/project.assets.json" \
  || fail "the console project did not get Engine.Formats $version as Engine's dependency"
story=$(cd "$work" && dotnet "$consumer/out/Consumer.dll" "$repo/models/stories260K.gguf") \
  || fail "the console project failed to generate (exit $?)"
[[ "$story" == "Once upon a time"?* ]] || fail "the console project printed no story: '$story'"
indent "$story"
stage_done

# 4. The tool, installed as a user installs it, run from a folder with no models/ in it or above it.
stage 4/4 "installing Engine.Cli $version as a tool and running it from another folder"
tools=$work/tools
run_logged "$work/tool-install.log" env -C "$work" dotnet tool install Engine.Cli --version "$version" --tool-path "$tools" --add-source "$feed" \
  || fail "dotnet tool install Engine.Cli $version failed (log above)"
[ -x "$tools/engine" ] || fail "the tool installed no 'engine' command in $tools"
elsewhere=$work/elsewhere
mkdir -p "$elsewhere"
cli_story=$(cd "$elsewhere" && "$tools/engine" run "Once upon a time" -n 32 --temperature 0 2>"$work/engine-run.err") \
  || { cat "$work/engine-run.err" >&2; fail "'engine run' from $elsewhere exited non-zero"; }
[[ "$cli_story" == "Once upon a time"?* ]] || { cat "$work/engine-run.err" >&2; fail "'engine run' printed no story: '$cli_story'"; }
indent "$cli_story"
indent "$(tail -n 1 "$work/engine-run.err")"
# Both ran the same model greedily, so the tool's 32 tokens are the start of the library's 64.
[[ "$story" == "$cli_story"* ]] || fail "the tool's greedy story is not the start of the library's: '$cli_story' vs '$story'"
stage_done

say "all checks passed in $(seconds_since "$started") s"

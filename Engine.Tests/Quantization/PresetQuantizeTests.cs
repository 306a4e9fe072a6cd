using System.Security.Cryptography;
using Engine.Tests.Support;
using global::Engine.Quantization;

namespace Engine.Tests.Quantization;

/// <summary>A fact that runs only when ENGINE_QUANTIZE_PRESET names the qwen2.5-1.5b F16 benchmark preset
/// (/tmp/oracle/make_bench_model.sh qwen2.5-1.5b F16 makes it): quantizing its 3 GB takes minutes per type, too long
/// for every test run.</summary>
public sealed class PresetFactAttribute : FactAttribute
{
    public const string Variable = "ENGINE_QUANTIZE_PRESET";

    public PresetFactAttribute()
    {
        if (!File.Exists(Environment.GetEnvironmentVariable(Variable)))
            Skip = $"{Variable} does not name the qwen2.5-1.5b F16 preset (minutes per type; see Engine.Tests/TestData/quantize/README.md)";
    }
}

/// <summary>A <see cref="PresetFactAttribute"/> that also needs ENGINE_QUANTIZE_PRESET_IMATRIX, the preset's importance
/// matrix the imatrix reference was made with.</summary>
public sealed class PresetImatrixFactAttribute : FactAttribute
{
    public const string Variable = "ENGINE_QUANTIZE_PRESET_IMATRIX";

    public PresetImatrixFactAttribute()
    {
        if (!File.Exists(Environment.GetEnvironmentVariable(PresetFactAttribute.Variable)) || !File.Exists(Environment.GetEnvironmentVariable(Variable)))
            Skip = $"{PresetFactAttribute.Variable} and {Variable} do not name the qwen2.5-1.5b F16 preset and its importance matrix " +
                   "(minutes per type; see Engine.Tests/TestData/quantize/README.md)";
    }
}

/// <summary>The benchmark preset against the SHA-256 of the files llama.cpp's quantizer wrote from it
/// (TestData/quantize/qwen2.5-1.5b-F16.tsv). ENGINE_QUANTIZE_PRESET_TYPES (comma-separated) picks some types.</summary>
public sealed class PresetQuantizeTests
{
    [PresetFact]
    public void Preset_quantizes_to_llama_cpp_files()
    {
        var input = Environment.GetEnvironmentVariable(PresetFactAttribute.Variable)!;
        var rows = File.ReadAllLines(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "qwen2.5-1.5b-F16.tsv"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split('\t')).ToList();
        var input_sha = rows.Single(r => r[0] == "input")[1];
        using (var s = File.OpenRead(input))
            System.Convert.ToHexStringLower(SHA256.HashData(s)).Should().Be(input_sha, "the preset must be the file the reference was made from");
        var only = Environment.GetEnvironmentVariable("ENGINE_QUANTIZE_PRESET_TYPES")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
        var dir = Directory.CreateTempSubdirectory("quantize-preset-").FullName;
        try
        {
            foreach (var r in rows.Where(r => r[0] != "input" && (only is null || only.Contains(r[0]))))
            {
                var output = Path.Combine(dir, r[0] + ".gguf");
                ModelQuantizer.Quantize(input, output, new QuantizeOptions { Type = r[0] }, null, CancellationToken.None);
                using (var s = File.OpenRead(output))
                    System.Convert.ToHexStringLower(SHA256.HashData(s)).Should().Be(r[1], $"{r[0]} file");
                File.Delete(output);
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>With an importance matrix (TestData/quantize/qwen2.5-1.5b-F16-imatrix.tsv): ENGINE_QUANTIZE_PRESET_IMATRIX
    /// names the matrix the reference was made with (`engine imatrix` on the preset; the TSV has its SHA-256 and the
    /// path string llama-quantize was given, which the file records).</summary>
    [PresetImatrixFact]
    public void Preset_quantizes_with_an_imatrix_to_llama_cpp_files()
    {
        var input = Environment.GetEnvironmentVariable(PresetFactAttribute.Variable)!;
        var imatrix = Environment.GetEnvironmentVariable(PresetImatrixFactAttribute.Variable)!;
        var rows = File.ReadAllLines(TestPaths.Repo("Engine.Tests", "TestData", "quantize", "qwen2.5-1.5b-F16-imatrix.tsv"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split('\t')).ToList();
        using (var s = File.OpenRead(imatrix))
            System.Convert.ToHexStringLower(SHA256.HashData(s)).Should().Be(rows.Single(r => r[0] == "imatrix")[1], "the reference's importance matrix");
        var recorded = rows.Single(r => r[0] == "imatrix")[2];
        var dir = Directory.CreateTempSubdirectory("quantize-preset-imatrix-").FullName;
        try
        {
            var only = Environment.GetEnvironmentVariable("ENGINE_QUANTIZE_PRESET_TYPES")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
            foreach (var r in rows.Where(r => r[0] is not ("input" or "imatrix") && (only is null || only.Contains(r[0]))))
            {
                var output = Path.Combine(dir, r[0] + ".gguf");
                ModelQuantizer.Quantize(input, output, new QuantizeOptions { Type = r[0], ImatrixPath = imatrix, RecordedImatrixPath = recorded },
                    null, CancellationToken.None);
                using (var s = File.OpenRead(output))
                    System.Convert.ToHexStringLower(SHA256.HashData(s)).Should().Be(r[1], $"{r[0]} file with the imatrix");
                File.Delete(output);
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

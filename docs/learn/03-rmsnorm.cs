#:project ../../Engine/Engine.csproj
// 03 - RMSNorm: keeping the residual stream at a steady scale
//
// Every block reads the residual stream x through a normalization first, so that the matrices after it see inputs of
// a steady size however large x has grown. Llama uses RMSNorm (Zhang & Sennrich, 2019): divide x by its root mean
// square, then multiply each dimension by a learned scale w:
//
//     y_i = x_i / sqrt(mean_j(x_j^2) + eps) * w_i
//
// Unlike LayerNorm there is no mean subtraction and no bias. eps (1e-5 here, from the file's metadata) keeps the
// division finite for an all-zero row. Each block has two: `attn_norm` before attention (its input is the block's
// input, `l_in`) and `ffn_norm` before the feed-forward (its input is `ffn_inp`, the stream after attention).
//
// This program computes both by hand, for every layer and position, from the engine's own inputs (hooks l_in and
// ffn_inp) and the scales in the GGUF file, and compares with the engine's attn_norm and ffn_norm.
//
//   dotnet run docs/learn/03-rmsnorm.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
using var model = Model.Load(modelPath);
var tokens = model.Tokenize("Once upon a time, there was a little cat.");
var cache = (await model.RunWithCacheAsync([tokens], "l_in,attn_norm,ffn_inp,ffn_norm"))[0];

using var file = GgufFile.Open(modelPath);
float eps = (float)file.Metadata.GetFloatOrNull("llama.attention.layer_norm_rms_epsilon")!.Value;
Console.WriteLine($"eps = {eps}, {model.Info.LayerCount} layers, {tokens.Count} positions");

// float32 arithmetic in a different order than the engine's vector code: rounding differences only.
const double tolerance = 1e-5;
double worstOverall = 0;
for (int layer = 0; layer < model.Info.LayerCount; layer++)
    foreach (var (input, output, scale) in new[] { ("l_in", "attn_norm", "attn_norm.weight"), ("ffn_inp", "ffn_norm", "ffn_norm.weight") })
    {
        float[] w = Floats(file, $"blk.{layer}.{scale}");
        var x = cache[$"{input}.{layer}"];
        var engine = cache[$"{output}.{layer}"];
        double worst = 0;
        for (int t = 0; t < tokens.Count; t++)
        {
            float[] y = RmsNorm(x.Row(t), w, eps);
            for (int i = 0; i < y.Length; i++) worst = Math.Max(worst, Math.Abs(y[i] - engine.Row(t)[i]));
            if (layer == 0 && t == 1 && output == "attn_norm")
            {
                Console.WriteLine($"layer 0, position 1, {output}:");
                Console.WriteLine($"  by hand: {Show(y)}");
                Console.WriteLine($"  engine:  {Show(engine.Row(t))}");
            }
        }
        Console.WriteLine($"{output}.{layer}: max |difference| {worst:E2}");
        worstOverall = Math.Max(worstOverall, worst);
    }
Console.WriteLine($"max |difference| {worstOverall:E2} (tolerance {tolerance:E0})");
return worstOverall <= tolerance ? 0 : 1;

static float[] RmsNorm(ReadOnlySpan<float> x, float[] w, float eps)
{
    float sumOfSquares = 0;
    foreach (float v in x) sumOfSquares += v * v;
    float inverseRms = 1 / MathF.Sqrt(sumOfSquares / x.Length + eps);
    var y = new float[x.Length];
    for (int i = 0; i < x.Length; i++) y[i] = x[i] * inverseRms * w[i];
    return y;
}

static float[] Floats(GgufFile file, string name) => MemoryMarshal.Cast<byte, float>(file.GetTensor(name).Bytes).ToArray();

static string Show(ReadOnlySpan<float> row) => string.Join(" ", row[..6].ToArray().Select(v => v.ToString("+0.0000;-0.0000"))) + " ...";

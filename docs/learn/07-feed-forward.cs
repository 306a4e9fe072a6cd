#:project ../../Engine/Engine.csproj
// 07 - The feed-forward: SwiGLU
//
// After attention has moved information between positions, each block's feed-forward works on every position alone:
// a two-layer network that widens the stream (64 -> 172 here), applies a non-linearity and narrows it back. Llama's
// is SwiGLU (Shazeer, 2020): two projections of the normalized stream x, one passed through SiLU acting as a gate on
// the other, then a down projection:
//
//     gate = W_gate x,   up = W_up x                      (172 values each)
//     h    = silu(gate) * up,   silu(z) = z / (1 + e^-z)  (the `ffn_swiglu` hook; TransformerLens's mlp.hook_post)
//     out  = W_down h                                     (64 values: `ffn_out`, hook_mlp_out)
//
// and the block's output adds it to the stream: l_out = ffn_inp + out. Each of the 172 hidden values is a "neuron";
// interpretability work reads and ablates them at ffn_swiglu.
//
// This program computes gate, up, h and out by hand from the engine's ffn_norm for one layer and every position, and
// compares with the engine's ffn_swiglu, ffn_out and l_out.
//
//   dotnet run docs/learn/07-feed-forward.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
using var model = Model.Load(modelPath);
var tokens = model.Tokenize("Once upon a time, there was a little cat.");
const int layer = 2;
var cache = (await model.RunWithCacheAsync([tokens], $"ffn_inp.{layer},ffn_norm.{layer},ffn_swiglu.{layer},ffn_out.{layer},l_out.{layer}"))[0];

using var file = GgufFile.Open(modelPath);
var gateWeight = Matrix(file, $"blk.{layer}.ffn_gate.weight");
var upWeight = Matrix(file, $"blk.{layer}.ffn_up.weight");
var downWeight = Matrix(file, $"blk.{layer}.ffn_down.weight");
Console.WriteLine($"layer {layer}: W_gate and W_up {gateWeight.Rows}x{gateWeight.Cols}, W_down {downWeight.Rows}x{downWeight.Cols}");

double worstHidden = 0, worstOut = 0, worstResidual = 0;
for (int t = 0; t < tokens.Count; t++)
{
    var x = cache[$"ffn_norm.{layer}"].Row(t).ToArray();
    float[] gate = gateWeight.Times(x), up = upWeight.Times(x);
    var h = new float[gate.Length];
    for (int i = 0; i < h.Length; i++) h[i] = gate[i] / (1 + MathF.Exp(-gate[i])) * up[i];
    float[] output = downWeight.Times(h);

    worstHidden = Math.Max(worstHidden, MaxDiff(h, cache[$"ffn_swiglu.{layer}"].Row(t)));
    worstOut = Math.Max(worstOut, MaxDiff(output, cache[$"ffn_out.{layer}"].Row(t)));
    var residual = cache[$"ffn_inp.{layer}"].Row(t).ToArray().Zip(output, (a, b) => a + b).ToArray();
    worstResidual = Math.Max(worstResidual, MaxDiff(residual, cache[$"l_out.{layer}"].Row(t)));
    if (t == 3)
    {
        Console.WriteLine($"position {t}: hidden (ffn_swiglu) by hand {Show(h)}");
        Console.WriteLine($"             hidden (ffn_swiglu) engine  {Show(cache[$"ffn_swiglu.{layer}"].Row(t))}");
        Console.WriteLine($"             output (ffn_out) by hand    {Show(output)}");
        Console.WriteLine($"             output (ffn_out) engine     {Show(cache[$"ffn_out.{layer}"].Row(t))}");
    }
}
// float32 rounding only (values of order 1 to 10).
const double tolerance = 1e-4;
Console.WriteLine($"max |difference|: ffn_swiglu {worstHidden:E2}, ffn_out {worstOut:E2}, l_out {worstResidual:E2} (tolerance {tolerance:E0})");
return Math.Max(worstHidden, Math.Max(worstOut, worstResidual)) <= tolerance ? 0 : 1;

static FloatMatrix Matrix(GgufFile file, string name)
{
    var tensor = file.GetTensor(name);   // GGUF shape [inputs, outputs]: outputs rows of inputs floats
    return new FloatMatrix((int)tensor.Shape[1], (int)tensor.Shape[0], MemoryMarshal.Cast<byte, float>(tensor.Bytes).ToArray());
}

static double MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
{
    double worst = 0;
    for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
    return worst;
}

static string Show(ReadOnlySpan<float> row) => string.Join(" ", row[..6].ToArray().Select(v => v.ToString("+0.0000;-0.0000"))) + " ...";

/// <summary>y = W x for a row-major matrix of Rows x Cols.</summary>
sealed record FloatMatrix(int Rows, int Cols, float[] Values)
{
    public float[] Times(float[] x)
    {
        var y = new float[Rows];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Cols; c++) y[r] += Values[r * Cols + c] * x[c];
        return y;
    }
}

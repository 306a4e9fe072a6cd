#:project ../../Engine/Engine.csproj
// 10 - A mixture-of-experts router
//
// A mixture-of-experts (MoE) layer replaces the one feed-forward of lesson 07 by several (the experts) and runs only a
// few of them per token, so a model can hold many more weights than it spends time on. A small router matrix scores
// every expert for the token; the scores become probabilities; the k best experts run and their outputs are mixed:
//
//     logits  = W_router x                     (one score per expert: ffn_moe_logits)
//     p       = softmax(logits)                (ffn_moe_probs)
//     chosen  = the k most probable experts    (ffn_moe_topk; ties go to the lower index)
//     weights = p[chosen] / sum(p[chosen])     (renormalized to sum to 1, as Qwen3-MoE and Mixtral do: ffn_moe_weights_norm)
//     out     = sum over chosen e of weights_e * SwiGLU_e(x)     (ffn_moe_out)
//
// stories260K has no experts, so this lesson uses a tiny random-weight MoE that ships with the repository's tests,
// Engine.Tests/Fixtures/fx-qwen3moe-F16.gguf (qwen3moe: 8 experts, 2 per token, experts stored as F16 and stacked into
// one [inputs, outputs, experts] tensor per projection; see Engine.Tests/Fixtures/PROVENANCE.md). Its words mean
// nothing; its routing is real. The program recomputes every step above by hand for layer 0 from the engine's ffn_norm
// and compares each with the engine's hook.
//
//   dotnet run docs/learn/10-moe-router.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "Engine.Tests", "Fixtures", "fx-qwen3moe-F16.gguf");
using var model = Model.Load(modelPath);
var tokens = model.Tokenize("Once upon a time, there was a little cat.");
const int layer = 0;
var cache = (await model.RunWithCacheAsync([tokens],
    $"ffn_norm.{layer},ffn_moe_logits.{layer},ffn_moe_probs.{layer},ffn_moe_topk.{layer},ffn_moe_weights_norm.{layer},ffn_moe_out.{layer}"))[0];

using var file = GgufFile.Open(modelPath);
int experts = model.Info.ExpertCount, k = model.Info.ExpertsPerToken, width = model.Info.EmbeddingLength;
float[] router = Floats(file.GetTensor($"blk.{layer}.ffn_gate_inp.weight"));      // experts rows of width values
var gate = file.GetTensor($"blk.{layer}.ffn_gate_exps.weight");                   // [width, hidden, experts]
int hidden = (int)gate.Shape[1];
float[] gates = Floats(gate), ups = Floats(file.GetTensor($"blk.{layer}.ffn_up_exps.weight")), downs = Floats(file.GetTensor($"blk.{layer}.ffn_down_exps.weight"));
Console.WriteLine($"{model.Info.Architecture}: {experts} experts of hidden width {hidden}, {k} per token; router {experts}x{width}");

double worstLogits = 0, worstProbs = 0, worstWeights = 0, worstOut = 0;
int sameChoice = 0;
for (int t = 0; t < tokens.Count; t++)
{
    var x = cache[$"ffn_norm.{layer}"].Row(t).ToArray();
    var logits = new float[experts];
    for (int e = 0; e < experts; e++)
        for (int i = 0; i < width; i++) logits[e] += router[e * width + i] * x[i];
    float max = logits.Max();
    var p = logits.Select(z => MathF.Exp(z - max)).ToArray();
    float sum = p.Sum();
    for (int e = 0; e < experts; e++) p[e] /= sum;
    int[] chosen = Enumerable.Range(0, experts).OrderByDescending(e => p[e]).ThenBy(e => e).Take(k).ToArray();
    float chosenSum = chosen.Sum(e => p[e]);
    float[] weights = chosen.Select(e => p[e] / chosenSum).ToArray();

    // The chosen experts' SwiGLUs, mixed by the weights. llama.cpp (and the engine) round x to F16 before multiplying
    // F16 weights; doing the same here keeps the comparison tight.
    var xHalf = x.Select(v => (float)(Half)v).ToArray();
    var output = new float[width];
    for (int slot = 0; slot < k; slot++)
    {
        int e = chosen[slot];
        var h = new float[hidden];
        for (int r = 0; r < hidden; r++)
        {
            float g = 0, u = 0;
            for (int i = 0; i < width; i++)
            {
                g += gates[(e * hidden + r) * width + i] * xHalf[i];
                u += ups[(e * hidden + r) * width + i] * xHalf[i];
            }
            h[r] = (float)(Half)(g / (1 + MathF.Exp(-g)) * u);
        }
        for (int r = 0; r < width; r++)
        {
            float y = 0;
            for (int i = 0; i < hidden; i++) y += downs[(e * width + r) * hidden + i] * h[i];
            output[r] += weights[slot] * y;
        }
    }

    worstLogits = Math.Max(worstLogits, MaxDiff(logits, cache[$"ffn_moe_logits.{layer}"].Row(t)));
    worstProbs = Math.Max(worstProbs, MaxDiff(p, cache[$"ffn_moe_probs.{layer}"].Row(t)));
    var engineChoice = cache[$"ffn_moe_topk.{layer}"].Row(t).ToArray().Select(v => (int)v).ToArray();
    if (engineChoice.SequenceEqual(chosen)) sameChoice++;
    worstWeights = Math.Max(worstWeights, MaxDiff(weights, cache[$"ffn_moe_weights_norm.{layer}"].Row(t)));
    worstOut = Math.Max(worstOut, MaxDiff(output, cache[$"ffn_moe_out.{layer}"].Row(t)));
    if (t < 4)
        Console.WriteLine($"'{model.TokenText(tokens[t])}': p = {string.Join(" ", p.Select(v => v.ToString("0.000")))} -> experts {string.Join(",", chosen)} " +
            $"weights {string.Join(",", weights.Select(v => v.ToString("0.000")))}; engine chose {string.Join(",", engineChoice)}");
}
// Router: float32 rounding of 256-term sums. Output: float32 sums over F16-rounded inputs, in another order.
const double tolerance = 1e-4, outputTolerance = 1e-3;
Console.WriteLine($"same experts at {sameChoice}/{tokens.Count} positions; max |difference|: logits {worstLogits:E2}, probabilities {worstProbs:E2}, " +
    $"weights {worstWeights:E2} (tolerance {tolerance:E0}), ffn_moe_out {worstOut:E2} (tolerance {outputTolerance:E0})");
return sameChoice == tokens.Count && Math.Max(worstLogits, Math.Max(worstProbs, worstWeights)) <= tolerance && worstOut <= outputTolerance ? 0 : 1;

// F32 or F16 values of a tensor as floats.
static float[] Floats(TensorView tensor) => tensor.Type switch
{
    GgmlType.F32 => MemoryMarshal.Cast<byte, float>(tensor.Bytes).ToArray(),
    GgmlType.F16 => MemoryMarshal.Cast<byte, Half>(tensor.Bytes).ToArray().Select(h => (float)h).ToArray(),
    _ => throw new InvalidDataException($"{tensor.Name} is {tensor.Type}; this lesson reads F32 and F16"),
};

static double MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
{
    double worst = 0;
    for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
    return worst;
}

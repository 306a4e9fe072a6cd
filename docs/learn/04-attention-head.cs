#:project ../../Engine/Engine.csproj
// 04 - One attention head by hand
//
// Attention is how a position reads from earlier positions. Each head projects the normalized stream x of every
// position into a query q, a key k and a value v (Wq, Wk, Wv are learned). Position t scores every position j <= t by
// how well its key matches t's query, turns the scores into weights with a softmax, and takes the weighted average of
// the values:
//
//     score_j = q_t . k_j / sqrt(d)          (d = head width; the scaling keeps the softmax from saturating)
//     p_j     = exp(score_j) / sum_i exp(score_i)     over j <= t only: the causal mask, no peeking ahead
//     out_t   = sum_j p_j v_j
//
// stories260K has 8 query heads of width 8 but only 4 key/value heads: grouped-query attention, where query heads 2g
// and 2g+1 share key/value head g (half the KV cache). The heads' outputs side by side form `kqv_out` (TransformerLens's
// hook_z), which W_o then mixes back into the stream. q and k are rotated by RoPE before scoring (lesson 05), so here
// they are taken from the engine's Qcur/Kcur hooks; v has no rotation and is computed by hand from x and Wv. The
// pattern p is the `kq_soft_max` hook ([heads, query position, key position]).
//
//   dotnet run docs/learn/04-attention-head.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
using var model = Model.Load(modelPath, new ModelLoadOptions { KvCacheType = KvCacheType.F32 });
var tokens = model.Tokenize("Once upon a time, there was a little cat.");
int T = tokens.Count;
const int layer = 0, head = 3;
var cache = (await model.RunWithCacheAsync([tokens], $"attn_norm.{layer},Qcur.{layer},Kcur.{layer},Vcur.{layer},kq_soft_max.{layer},kqv_out.{layer}"))[0];

using var file = GgufFile.Open(modelPath);
int heads = (int)file.Metadata.GetIntegerOrNull("llama.attention.head_count")!.Value;
int kvHeads = (int)file.Metadata.GetIntegerOrNull("llama.attention.head_count_kv")!.Value;
int d = model.Info.EmbeddingLength / heads;
int kvHead = head / (heads / kvHeads);
float[] wv = Floats(file, $"blk.{layer}.attn_v.weight");   // kvHeads*d rows of d_model values
Console.WriteLine($"layer {layer}, query head {head} of {heads}, reads key/value head {kvHead} of {kvHeads}; head width {d}");

// v_j for this head: rows kvHead*d .. kvHead*d + d - 1 of Wv times x_j.
var x = cache[$"attn_norm.{layer}"];
var v = new float[T][];
for (int j = 0; j < T; j++)
{
    v[j] = new float[d];
    for (int r = 0; r < d; r++)
        for (int c = 0; c < model.Info.EmbeddingLength; c++)
            v[j][r] += wv[(kvHead * d + r) * model.Info.EmbeddingLength + c] * x.Row(j)[c];
}
double worstV = 0, worstPattern = 0, worstOut = 0;
for (int j = 0; j < T; j++) worstV = Math.Max(worstV, MaxDiff(v[j], cache[$"Vcur.{layer}"].Row(j).Slice(kvHead * d, d)));

var pattern = cache[$"kq_soft_max.{layer}"];   // [heads, T, T]
for (int t = 0; t < T; t++)
{
    ReadOnlySpan<float> q = cache[$"Qcur.{layer}"].Row(t).Slice(head * d, d);
    var scores = new float[t + 1];
    for (int j = 0; j <= t; j++)
    {
        ReadOnlySpan<float> k = cache[$"Kcur.{layer}"].Row(j).Slice(kvHead * d, d);
        float dot = 0;
        for (int i = 0; i < d; i++) dot += q[i] * k[i];
        scores[j] = dot / MathF.Sqrt(d);
    }
    float[] p = Softmax(scores);
    var output = new float[d];
    for (int j = 0; j <= t; j++)
        for (int i = 0; i < d; i++) output[i] += p[j] * v[j][i];

    ReadOnlySpan<float> engineP = pattern.Values.AsSpan((head * T + t) * T, T);
    worstPattern = Math.Max(worstPattern, MaxDiff(p, engineP[..(t + 1)]));
    for (int j = t + 1; j < T; j++) worstPattern = Math.Max(worstPattern, Math.Abs(engineP[j]));   // masked: exactly 0
    worstOut = Math.Max(worstOut, MaxDiff(output, cache[$"kqv_out.{layer}"].Row(t).Slice(head * d, d)));
    if (t == 4)
    {
        Console.WriteLine($"position {t} ('{model.TokenText(tokens[t])}') attends to positions 0..{t}:");
        Console.WriteLine($"  pattern by hand: {Show(p)}");
        Console.WriteLine($"  pattern engine:  {Show(engineP[..(t + 1)])}");
        Console.WriteLine($"  output by hand:  {Show(output)}");
        Console.WriteLine($"  output engine:   {Show(cache[$"kqv_out.{layer}"].Row(t).Slice(head * d, d))}");
    }
}
// float32 rounding only (values of order 1).
const double tolerance = 1e-5;
Console.WriteLine($"max |difference|: v {worstV:E2}, pattern (kq_soft_max) {worstPattern:E2}, output (kqv_out) {worstOut:E2}; tolerance {tolerance:E0}");
return Math.Max(worstV, Math.Max(worstPattern, worstOut)) <= tolerance ? 0 : 1;

static float[] Softmax(float[] z)
{
    float max = z.Max();                                 // subtracting the max keeps exp from overflowing
    var e = z.Select(s => MathF.Exp(s - max)).ToArray();
    float sum = e.Sum();
    return e.Select(s => s / sum).ToArray();
}

static double MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
{
    double worst = 0;
    for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
    return worst;
}

static float[] Floats(GgufFile file, string name) => MemoryMarshal.Cast<byte, float>(file.GetTensor(name).Bytes).ToArray();

static string Show(ReadOnlySpan<float> row) => string.Join(" ", row[..Math.Min(6, row.Length)].ToArray().Select(v => v.ToString("+0.0000;-0.0000"))) + (row.Length > 6 ? " ..." : "");

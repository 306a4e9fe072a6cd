#:project ../../Engine/Engine.csproj
// 05 - RoPE: positions as rotations
//
// Attention by itself does not know where a key is: the scores of lesson 04 would be the same if the earlier tokens
// were shuffled. Rotary position embedding (Su et al., 2021) fixes that by rotating q and k according to their
// position before they are compared. Each head's d dimensions are taken as d/2 pairs; pair i of a vector at position m
// is turned by the angle m * theta_i, with theta_i = base^(-2i/d) (base 10000 here): the first pairs spin fast, the
// last ones slowly, like the hands of a clock.
//
//     (x_a, x_b)  ->  (x_a cos(m theta_i) - x_b sin(m theta_i),  x_a sin(m theta_i) + x_b cos(m theta_i))
//
// Rotating q by m and k by n and taking their dot product leaves a function of m - n only: attention sees relative
// positions. Which two dimensions form a pair is a matter of layout: GGUF llama files (this one) pair neighbours
// (2i, 2i+1); Qwen, and every Hugging Face checkpoint, pair the halves (i, i + d/2) ("NeoX" style). Same idea.
//
// This program computes q = Wq x by hand from the normalized stream (hook attn_norm), rotates it, and compares with the
// engine's `Qcur` (q after RoPE) for every head and position; then checks the relative-position property.
//
//   dotnet run docs/learn/05-rope.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
using var model = Model.Load(modelPath);
var tokens = model.Tokenize("Once upon a time, there was a little cat.");
const int layer = 1;
var cache = (await model.RunWithCacheAsync([tokens], $"attn_norm.{layer},Qcur.{layer}"))[0];

using var file = GgufFile.Open(modelPath);
int width = model.Info.EmbeddingLength;
int heads = (int)file.Metadata.GetIntegerOrNull("llama.attention.head_count")!.Value;
int d = width / heads;
double ropeBase = file.Metadata.GetFloatOrNull("llama.rope.freq_base") ?? 10000;
float[] wq = Floats(file, $"blk.{layer}.attn_q.weight");   // width rows of width values
Console.WriteLine($"layer {layer}: {heads} heads of width {d}, base {ropeBase}; angles per position: " +
    string.Join(" ", Enumerable.Range(0, d / 2).Select(i => Math.Pow(ropeBase, -2.0 * i / d).ToString("0.####"))));

double worst = 0;
for (int t = 0; t < tokens.Count; t++)
{
    var q = new float[width];
    for (int r = 0; r < width; r++)
        for (int c = 0; c < width; c++) q[r] += wq[r * width + c] * cache[$"attn_norm.{layer}"].Row(t)[c];
    for (int h = 0; h < heads; h++) Rotate(q.AsSpan(h * d, d), position: t, ropeBase);
    var engine = cache[$"Qcur.{layer}"].Row(t);
    for (int i = 0; i < width; i++) worst = Math.Max(worst, Math.Abs(q[i] - engine[i]));
    if (t == 5)
    {
        Console.WriteLine($"position {t}, head 0 after RoPE:");
        Console.WriteLine($"  by hand: {Show(q.AsSpan(0, d))}");
        Console.WriteLine($"  engine:  {Show(engine[..d])}");
    }
}
// float32 rounding; the engine computes cos and sin of float angles (values up to ~20).
const double tolerance = 1e-4;
Console.WriteLine($"Qcur.{layer}: max |difference| {worst:E2} (tolerance {tolerance:E0})");

// Relative positions: rotate one q and one k by (m, n) and by (m + 7, n + 7): the same dot product.
// (Any two vectors will do: here two rows of the engine's q.)
var a = cache[$"Qcur.{layer}"].Row(0)[..d].ToArray();
var b = cache[$"Qcur.{layer}"].Row(1)[..d].ToArray();
double Dot(int m, int n)
{
    var qm = (float[])a.Clone(); var kn = (float[])b.Clone();
    Rotate(qm, m, ropeBase); Rotate(kn, n, ropeBase);
    return qm.Zip(kn, (x, y) => (double)x * y).Sum();
}
double shift = Math.Abs(Dot(9, 4) - Dot(16, 11));
Console.WriteLine($"q.k at positions (9, 4): {Dot(9, 4):F5}; at (16, 11): {Dot(16, 11):F5}; at (9, 8): {Dot(9, 8):F5}");
return worst <= tolerance && shift <= 1e-4 ? 0 : 1;

// Adjacent pairs (2i, 2i+1) of one head turned by position * base^(-2i/d).
static void Rotate(Span<float> x, int position, double ropeBase)
{
    int d = x.Length;
    for (int i = 0; i < d / 2; i++)
    {
        double angle = position * Math.Pow(ropeBase, -2.0 * i / d);
        float cos = (float)Math.Cos(angle), sin = (float)Math.Sin(angle);
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * cos - x1 * sin;
        x[2 * i + 1] = x0 * sin + x1 * cos;
    }
}

static float[] Floats(GgufFile file, string name) => MemoryMarshal.Cast<byte, float>(file.GetTensor(name).Bytes).ToArray();

static string Show(ReadOnlySpan<float> row) => string.Join(" ", row[..Math.Min(6, row.Length)].ToArray().Select(v => v.ToString("+0.0000;-0.0000"))) + (row.Length > 6 ? " ..." : "");

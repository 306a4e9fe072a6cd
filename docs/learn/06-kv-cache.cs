#:project ../../Engine/Engine.csproj
// 06 - The KV cache: generate one token at a time without recomputing the past
//
// Generating text means running the model once per new token. Because attention is causal, the keys and values of
// earlier positions never change once computed: position j's k and v depend only on tokens 0..j. So the model keeps
// them, layer by layer, in the KV cache, and a decode step computes q, k, v for the one new token only, appends its k
// and v to the cache, and attends over everything cached. Recomputing the whole sequence would give the same numbers
// at T times the cost. The price is memory: layers x positions x (key heads x head width) x 2 (k and v) floats.
//
// This program generates greedily in a session while its hooks record, at every step, layer 0's new q, k, v rows and
// its attention output, and the step's logits. It keeps its own KV cache from those k and v rows and recomputes each
// decode step's attention from it (lesson 04's formula over all heads, keys from earlier steps reused, never
// recomputed), and then runs the whole sequence in one pass to check that the step-by-step keys and logits are the
// ones recomputing everything gives.
//
//   dotnet run docs/learn/06-kv-cache.cs
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
// An F32 cache keeps k and v exactly as computed (the default F16 cache rounds them, saving half the memory).
using var model = Model.Load(modelPath, new ModelLoadOptions { KvCacheType = KvCacheType.F32 });
var prompt = model.Tokenize("Once upon a time");
int heads, kvHeads;
using (var file = GgufFile.Open(modelPath))
{
    heads = (int)file.Metadata.GetIntegerOrNull("llama.attention.head_count")!.Value;
    kvHeads = (int)file.Metadata.GetIntegerOrNull("llama.attention.head_count_kv")!.Value;
}
int d = model.Info.EmbeddingLength / heads;

// Every hook call, in order: which point, which positions, a copy of the values.
var calls = new List<(HookContext Context, float[] Values)>();
var generated = new List<int>();
using (var session = model.CreateSession())
using (session.AddHook("Qcur.0,Kcur.0,Vcur.0,kqv_out.0,result_output", (context, values) => calls.Add((context, values.ToArray()))))
    await foreach (var token in session.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = 12 }))
        generated.Add(token.Id);
Console.WriteLine($"prompt {prompt.Count} tokens, generated: {model.Detokenize(generated)}");

// Our own cache for layer 0: one k row and one v row per position, appended as the steps come.
var keys = new List<float[]>();
var values = new List<float[]>();
var stepLogits = new Dictionary<int, float[]>();   // position -> logits computed at that step
double worstAttention = 0;
int decodeSteps = 0;
float[] q = [];
foreach (var (c, v) in calls)
{
    switch (c.Name)
    {
        case "Qcur": q = v; break;
        case "Kcur": for (int r = 0; r < c.Rows; r++) keys.Add(v.AsSpan(r * c.Width, c.Width).ToArray()); break;
        case "Vcur": for (int r = 0; r < c.Rows; r++) values.Add(v.AsSpan(r * c.Width, c.Width).ToArray()); break;
        case "kqv_out" when c.Phase == ForwardPhase.Decode:
            // One new row at position c.FirstPosition; every earlier key and value comes from our cache.
            float[] output = Attend(q, keys, values, heads, kvHeads, d);
            double diff = output.Zip(v, (a, b) => Math.Abs(a - b)).Max();
            worstAttention = Math.Max(worstAttention, diff);
            decodeSteps++;
            Console.WriteLine($"decode step at position {c.FirstPosition,2}: cache holds {keys.Count,2} keys, attention max |difference| {diff:E2}");
            break;
        case "result_output": stepLogits[c.FirstPosition] = v; break;
    }
}
long cacheBytes = (long)model.Info.LayerCount * keys.Count * (kvHeads * d) * 2 * sizeof(float);
Console.WriteLine($"KV cache for {keys.Count} positions: {model.Info.LayerCount} layers x {keys.Count} x {kvHeads * d} x 2 x 4 bytes = {cacheBytes} bytes");

// Recompute everything in one pass: the prompt and every generated token that was fed back (all but the last).
var sequence = prompt.Concat(generated.Take(generated.Count - 1)).ToList();
var full = (await model.RunWithCacheAsync([sequence], "Kcur.0"))[0];
double worstKey = 0, worstLogit = 0;
for (int p = 0; p < sequence.Count; p++)
    worstKey = Math.Max(worstKey, keys[p].Zip(full["Kcur.0"].Row(p).ToArray(), (a, b) => Math.Abs(a - b)).Max());
int vocabulary = model.Info.VocabularySize;
foreach (var (position, logits) in stepLogits)
    worstLogit = Math.Max(worstLogit, logits.Zip(full.Logits!.AsSpan(position * vocabulary, vocabulary).ToArray(), (a, b) => Math.Abs(a - b)).Max());

// float32 rounding only: a batch of rows and one row at a time may sum in different orders.
const double tolerance = 1e-4;
Console.WriteLine($"step by step vs all at once: keys max |difference| {worstKey:E2}, logits {worstLogit:E2}; attention from our cache {worstAttention:E2} (tolerance {tolerance:E0})");
// Every generated token but the last was fed back as one decode step, and each step (the prompt's too) made logits.
bool everyStep = decodeSteps == generated.Count - 1 && stepLogits.Count == generated.Count;
return everyStep && Math.Max(worstKey, Math.Max(worstLogit, worstAttention)) <= tolerance ? 0 : 1;

// Lesson 04's attention for the newest position over every cached key and value, all heads.
static float[] Attend(float[] q, List<float[]> keys, List<float[]> values, int heads, int kvHeads, int d)
{
    var output = new float[heads * d];
    for (int h = 0; h < heads; h++)
    {
        int g = h / (heads / kvHeads);
        var scores = keys.Select(k => Enumerable.Range(0, d).Sum(i => q[h * d + i] * k[g * d + i]) / MathF.Sqrt(d)).ToArray();
        float max = scores.Max();
        var p = scores.Select(s => MathF.Exp(s - max)).ToArray();
        float sum = p.Sum();
        for (int j = 0; j < keys.Count; j++)
            for (int i = 0; i < d; i++) output[h * d + i] += p[j] / sum * values[j][g * d + i];
    }
    return output;
}

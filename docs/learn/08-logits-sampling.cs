#:project ../../Engine/Engine.csproj
// 08 - Logits and sampling: from the last hidden state to the next token
//
// After the last block, the stream is normalized once more (`result_norm`) and projected onto the vocabulary by the
// output matrix: one score (logit) per token, `result_output`. A softmax turns the logits into probabilities,
// p_i = exp(z_i) / sum_j exp(z_j). Greedy decoding takes the most probable token. Sampling draws from a reshaped
// distribution instead, in llama.cpp's order:
//
//     top-k:        keep the k highest logits
//     top-p:        of those, keep the smallest set whose probabilities (at temperature 1) add up to at least p
//     temperature:  divide the kept logits by T (T < 1 sharpens, T > 1 flattens) and softmax them
//     draw:         pick a token with those probabilities (a seeded random number, so runs repeat)
//
// This program computes the logits by hand from result_norm and the output matrix, the probabilities and the greedy
// choice, and compares them with the engine's greedy token and its log-probability. Then it builds the sampling
// distribution for temperature 0.8, top-k 10, top-p 0.95 by hand, lets the engine sample the next token with 1000
// different seeds, and checks that it only ever picks allowed tokens, about as often as the hand-made probabilities say.
//
//   dotnet run docs/learn/08-logits-sampling.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
// An F32 KV cache, so that the session's logits are the very ones the one-pass run below computes.
using var model = Model.Load(modelPath, new ModelLoadOptions { KvCacheType = KvCacheType.F32 });
var prompt = model.Tokenize("Once upon a time, there was a little");
int width = model.Info.EmbeddingLength, vocabulary = model.Info.VocabularySize, last = prompt.Count - 1;
var cache = (await model.RunWithCacheAsync([prompt], "result_norm"))[0];

// Logits by hand: the output matrix (or, in models with tied embeddings, the embedding table) times result_norm.
using var file = GgufFile.Open(modelPath);
var output = file.TryGetTensor("output.weight", out var o) ? o : file.GetTensor("token_embd.weight");
float[] w = MemoryMarshal.Cast<byte, float>(output.Bytes).ToArray();
var x = cache["result_norm"].Row(last).ToArray();
var logits = new float[vocabulary];
for (int token = 0; token < vocabulary; token++)
    for (int i = 0; i < width; i++) logits[token] += w[token * width + i] * x[i];
double logitDiff = logits.Zip(cache.Logits!.AsSpan(last * vocabulary, vocabulary).ToArray(), (a, b) => Math.Abs(a - b)).Max();

double[] p = Softmax(logits.Select(z => (double)z).ToArray());
int greedy = Array.IndexOf(p, p.Max());
var top5 = Enumerable.Range(0, vocabulary).OrderByDescending(i => p[i]).Take(5).ToArray();
Console.WriteLine($"prompt: {model.Detokenize(prompt)}");
Console.WriteLine($"logits (result_output): max |difference| {logitDiff:E2}");
Console.WriteLine($"by hand: most likely next tokens {string.Join(", ", top5.Select(i => $"'{model.TokenText(i)}' {p[i]:P1}"))}");

// The engine's greedy choice, with its log-probability and the top alternatives.
GeneratedToken chosen = null!;
using (var session = model.CreateSession())
    await foreach (var token in session.GenerateAsync(prompt, GenerateOptions.Greedy with { MaxTokens = 1, TopLogProbabilities = 5 }))
        chosen = token;
double logProbDiff = Math.Abs(chosen.LogProbability - Math.Log(p[greedy]));
bool sameAlternatives = chosen.TopAlternatives.Select(a => a.Id).SequenceEqual(top5);
Console.WriteLine($"engine:  greedy '{chosen.Text}' ({chosen.Id}), log p {chosen.LogProbability:F5} vs by hand {Math.Log(p[greedy]):F5}; same top 5: {sameAlternatives}");

// The sampling distribution by hand.
const int topK = 10;
const float topP = 0.95f, temperature = 0.8f;
var kept = Enumerable.Range(0, vocabulary).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(topK).ToList();
double[] pk = Softmax(kept.Select(i => (double)logits[i]).ToArray());       // temperature 1 among the k
int nucleus = 0;
for (double sum = 0; nucleus < kept.Count && sum < topP; nucleus++) sum += pk[nucleus];
kept = kept.Take(nucleus).ToList();
double[] sampling = Softmax(kept.Select(i => logits[i] / (double)temperature).ToArray());
Console.WriteLine($"top-k {topK}, top-p {topP}, temperature {temperature}: {kept.Count} tokens remain: " +
    string.Join(", ", kept.Select((t, n) => $"'{model.TokenText(t)}' {sampling[n]:P1}")));

// The engine, sampling the next token with 1000 seeds.
const int draws = 1000;
var counts = new Dictionary<int, int>();
var options = new GenerateOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = 0, MaxTokens = 1 };
for (ulong seed = 1; seed <= draws; seed++)
{
    using var session = model.CreateSession();
    await foreach (var token in session.GenerateAsync(prompt, options with { Seed = seed }))
        counts[token.Id] = counts.GetValueOrDefault(token.Id) + 1;
}
bool onlyAllowed = counts.Keys.All(kept.Contains);
// Each frequency is a binomial estimate: allow 4 standard deviations around the probability computed by hand.
bool frequenciesAgree = true;
for (int n = 0; n < kept.Count; n++)
{
    double frequency = counts.GetValueOrDefault(kept[n]) / (double)draws, sigma = Math.Sqrt(sampling[n] * (1 - sampling[n]) / draws);
    bool agrees = Math.Abs(frequency - sampling[n]) <= 4 * sigma + 1e-9;
    frequenciesAgree &= agrees;
    Console.WriteLine($"  '{model.TokenText(kept[n])}': by hand {sampling[n]:P1}, engine drew it {frequency:P1} of {draws} times{(agrees ? "" : "  <-- too far")}");
}
Console.WriteLine($"engine drew only allowed tokens: {onlyAllowed}");

// Logits: float32 sums of 64 products (values up to ~20); log-probability likewise.
const double tolerance = 1e-4;
bool ok = logitDiff <= tolerance && chosen.Id == greedy && logProbDiff <= tolerance && sameAlternatives && onlyAllowed && frequenciesAgree;
return ok ? 0 : 1;

static double[] Softmax(double[] z)
{
    double max = z.Max();
    var e = z.Select(v => Math.Exp(v - max)).ToArray();
    double sum = e.Sum();
    return e.Select(v => v / sum).ToArray();
}

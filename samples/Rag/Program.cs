// A small retrieval-augmented answer: embed every passage of a folder of text files, rank them by cosine similarity
// to the question, and answer with the best passages in the prompt.
//   dotnet run --project samples/Rag -- MODEL.gguf samples/Rag/docs "Which planet has the most moons?"
// One model serves both the embeddings and the answer here; a dedicated embedding model (Qwen3-Embedding, nomic-embed)
// ranks better and is loaded the same way.
using System.Numerics.Tensors;
using Engine;
using Microsoft.Extensions.AI;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: Rag MODEL.gguf DOCS_FOLDER QUESTION [--top N]");
    return 2;
}
string modelPath = args[0], folder = args[1], question = args[2];
int top = args.Length >= 5 && args[3] == "--top" ? int.Parse(args[4]) : 2;

using var model = await Model.LoadAsync(modelPath);
IEmbeddingGenerator<string, Embedding<float>> embedder = model.AsEmbeddingGenerator();

// Passages: the paragraphs of every .txt file, with where they came from.
var passages = Directory.EnumerateFiles(folder, "*.txt").Order(StringComparer.Ordinal)
    .SelectMany(file => File.ReadAllText(file).Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(text => (Source: Path.GetFileName(file), Text: text)))
    .ToList();
if (passages.Count == 0) { Console.Error.WriteLine($"no .txt passages in {folder}"); return 1; }

var vectors = await embedder.GenerateAsync(passages.Select(p => p.Text));
var query = (await embedder.GenerateAsync([question]))[0];
var ranked = passages.Zip(vectors)
    .Select(pair => (pair.First.Source, pair.First.Text, Score: TensorPrimitives.CosineSimilarity(query.Vector.Span, pair.Second.Vector.Span)))
    .OrderByDescending(p => p.Score)
    .Take(top)
    .ToList();
foreach (var (source, text, score) in ranked)
    Console.Error.WriteLine($"[{score:F3}] {source}: {text[..Math.Min(text.Length, 70)]}...");

using IChatClient client = model.AsChatClient();
var context = string.Join("\n\n", ranked.Select(p => $"From {p.Source}:\n{p.Text}"));
var response = await client.GetResponseAsync(
[
    new(ChatRole.System, "Answer the question using only the passages given. Say which file the answer comes from."),
    new(ChatRole.User, $"Passages:\n{context}\n\nQuestion: {question}"),
], new ChatOptions { Temperature = 0, MaxOutputTokens = 256 });
Console.WriteLine(response.Text);
return 0;

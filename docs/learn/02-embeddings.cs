#:project ../../Engine/Engine.csproj
// 02 - Embeddings: one row of a table per token
//
// The first thing the model does with token ids is look each one up in the embedding table `token_embd.weight`: a
// matrix with one row of d_model numbers (64 for stories260K) per vocabulary entry. Row t is token t's starting point
// in the model's 64-dimensional space; everything after this works on these rows (the "residual stream"). No
// arithmetic happens here: the lookup is a copy, so the engine's values must be bit-identical to the file's.
//
// GGUF stores a matrix with its shape written innermost first: token_embd.weight is [64, 512], i.e. 512 rows of 64
// floats, row-major. This program reads the rows of a prompt's tokens straight from the file's bytes (the public GGUF
// reader of Engine.Formats) and compares them with what the engine hands its `inp_embd` hook (TransformerLens's
// hook_embed).
//
//   dotnet run docs/learn/02-embeddings.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
using var model = Model.Load(modelPath);
var tokens = model.Tokenize("Once upon a time");

// The engine's embeddings of the prompt's tokens, recorded at the inp_embd hook: [tokens, width].
var cache = (await model.RunWithCacheAsync([tokens], "inp_embd"))[0];
var engine = cache["inp_embd"];

using var file = GgufFile.Open(modelPath);
var table = file.GetTensor("token_embd.weight");
if (table.Type != GgmlType.F32) throw new InvalidDataException("this lesson reads an F32 table (lesson 09 decodes a quantized one)");
int width = (int)table.Shape[0], vocabulary = (int)table.Shape[1];
ReadOnlySpan<float> all = MemoryMarshal.Cast<byte, float>(table.Bytes);   // the file's bytes seen as floats, no copy
Console.WriteLine($"token_embd.weight: {vocabulary} rows of {width} floats");

double worst = 0;
for (int i = 0; i < tokens.Count; i++)
{
    ReadOnlySpan<float> byHand = all.Slice(tokens[i] * width, width);
    var fromEngine = engine.Row(i);
    for (int d = 0; d < width; d++) worst = Math.Max(worst, Math.Abs(byHand[d] - fromEngine[d]));
    Console.WriteLine($"token {tokens[i],3} '{model.TokenText(tokens[i])}'");
    Console.WriteLine($"  by hand: {Show(byHand)}");
    Console.WriteLine($"  engine:  {Show(fromEngine)}");
}
Console.WriteLine($"max |difference| {worst:E2} (a lookup copies: tolerance 0)");
return worst == 0 ? 0 : 1;

static string Show(ReadOnlySpan<float> row) => string.Join(" ", row[..6].ToArray().Select(v => v.ToString("+0.0000;-0.0000"))) + " ...";

#:project ../../Engine/Engine.csproj
// 01 - Tokens: text -> ids -> pieces
//
// A language model never sees characters. Its tokenizer cuts the text into pieces from a fixed vocabulary and the
// model works on the pieces' numbers (ids). stories260K has a 512-piece SentencePiece vocabulary stored in the GGUF
// file itself: `tokenizer.ggml.tokens` (the pieces) and `tokenizer.ggml.scores` (one score per piece).
//
// SentencePiece's BPE encoding, as llama.cpp runs it: replace every space by "▁" (U+2581) and put one "▁" in front
// (so "time" at the start looks like " time" in the middle), split the text into single characters, then repeatedly
// merge the adjacent pair whose concatenation is in the vocabulary with the highest score (leftmost on ties), until no
// pair merges. The pieces' ids, after the beginning-of-sequence id (BOS, 1), are the tokens.
//
// This program encodes a sentence that way by hand from the file's vocabulary and checks that the engine's tokenizer
// gives the same ids, and that decoding the ids gives the text back.
//
//   dotnet run docs/learn/01-tokens.cs
using Engine;
using Engine.Formats.Gguf;

string modelPath = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models", "stories260K.gguf");
const string text = "Once upon a time, there was a little cat who liked to play in the garden.";

// The vocabulary, straight from the file's metadata.
string[] pieces;
float[] scores;
using (var file = GgufFile.Open(modelPath))
{
    pieces = file.Metadata.GetArrayOrNull<string>("tokenizer.ggml.tokens")!;
    scores = file.Metadata.GetArrayOrNull<float>("tokenizer.ggml.scores")!;
}
var idOf = new Dictionary<string, int>();
for (int id = 0; id < pieces.Length; id++) idOf.TryAdd(pieces[id], id);
Console.WriteLine($"vocabulary: {pieces.Length} pieces, e.g. {string.Join(" ", Enumerable.Range(300, 8).Select(i => $"{i}='{pieces[i]}'"))}");

// BPE by hand: start from characters, merge the best-scoring adjacent pair until none is in the vocabulary.
var symbols = ("▁" + text.Replace(' ', '▁')).Select(c => c.ToString()).ToList();
while (true)
{
    int best = -1;
    for (int i = 0; i + 1 < symbols.Count; i++)
        if (idOf.TryGetValue(symbols[i] + symbols[i + 1], out int merged)
            && (best < 0 || scores[merged] > scores[idOf[symbols[best] + symbols[best + 1]]]))
            best = i;
    if (best < 0) break;
    symbols[best] += symbols[best + 1];
    symbols.RemoveAt(best + 1);
}
// Every character of this sentence is in the vocabulary; a character that is not would fall back to its UTF-8 bytes
// (pieces "<0x..>"), which this sketch leaves out.
var byHand = new List<int> { 1 };
byHand.AddRange(symbols.Select(s => idOf[s]));

using var model = Model.Load(modelPath);
var engine = model.Tokenize(text);

Console.WriteLine($"text:      {text}");
Console.WriteLine($"by hand:   {string.Join(" ", byHand)}");
Console.WriteLine($"engine:    {string.Join(" ", engine)}");
Console.WriteLine($"pieces:    {string.Join("|", engine.Select(model.TokenText))}");
string decoded = model.Detokenize(engine);
Console.WriteLine($"decoded:   {decoded}");

bool sameIds = byHand.SequenceEqual(engine);
bool roundTrip = decoded == text;
Console.WriteLine($"ids equal: {sameIds}; text round-trips: {roundTrip}");
return sameIds && roundTrip ? 0 : 1;

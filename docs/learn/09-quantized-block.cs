#:project ../../Engine/Engine.csproj
// 09 - A quantized block, decoded by hand
//
// Weights are most of a model's memory, and reading them is most of a token's time, so they are usually stored in
// fewer bits. GGUF's Q8_0 cuts every row into blocks of 32 values and stores each block as one scale d (a 16-bit
// float) and 32 signed 8-bit integers q: value_i = d * q_i, 34 bytes instead of 128. The quantizer picks
// d = max|x| / 127, so the largest value of the block maps to +-127, and q_i = round(x_i / d): each value is off by at
// most d/2, plus a little because d itself is kept in 16 bits (relative error 2^-11, times |q| <= 127). (Q4_0 is the same idea with 4-bit q and an offset of 8; the K-quants add a second level of scales.)
//
// models/stories260K-Q8_0.gguf is the shipped model quantized by llama.cpp's quantizer (see models/PROVENANCE.md).
// This program reads token_embd.weight's raw bytes, decodes the blocks of a few rows by hand, and checks them against
// the engine's inp_embd hook on the quantized model (a lookup: exact); then it quantizes the same rows of the F32
// model by hand and checks that it gets the file's bytes, and shows how far the quantized values are from the originals.
//
//   dotnet run docs/learn/09-quantized-block.cs
using System.Runtime.InteropServices;
using Engine;
using Engine.Formats;
using Engine.Formats.Gguf;

string models = Path.Combine((string)AppContext.GetData("EntryPointFileDirectoryPath")!, "..", "..", "models");
string quantizedPath = Path.Combine(models, "stories260K-Q8_0.gguf"), originalPath = Path.Combine(models, "stories260K.gguf");
const int blockSize = 32, blockBytes = 2 + blockSize;   // F16 scale, then 32 int8

using var model = Model.Load(quantizedPath);
var tokens = model.Tokenize("Once upon a time");
var engine = (await model.RunWithCacheAsync([tokens], "inp_embd"))[0]["inp_embd"];

using var quantized = GgufFile.Open(quantizedPath);
using var original = GgufFile.Open(originalPath);
var table = quantized.GetTensor("token_embd.weight");
if (table.Type != GgmlType.Q8_0) throw new InvalidDataException($"token_embd.weight is {table.Type}, expected Q8_0");
int width = (int)table.Shape[0], blocksPerRow = width / blockSize;
byte[] bytes = table.Bytes.ToArray();
float[] originalTable = MemoryMarshal.Cast<byte, float>(original.GetTensor("token_embd.weight").Bytes).ToArray();
Console.WriteLine($"token_embd.weight: {table.Shape[1]} rows of {width} values = {blocksPerRow} blocks of {blockBytes} bytes per row " +
    $"({table.ByteSize} bytes; {originalTable.Length * 4} in F32)");

double worstDecode = 0, worstError = 0, worstErrorOverScale = 0;
bool sameBytes = true;
for (int n = 0; n < tokens.Count; n++)
{
    int token = tokens[n];
    for (int b = 0; b < blocksPerRow; b++)
    {
        int offset = (token * blocksPerRow + b) * blockBytes;
        // Decode: the scale's two bytes are an IEEE half (little-endian), then one signed byte per value.
        float d = (float)BitConverter.ToHalf(bytes, offset);
        var q = new sbyte[blockSize];
        var decoded = new float[blockSize];
        for (int i = 0; i < blockSize; i++)
        {
            q[i] = (sbyte)bytes[offset + 2 + i];
            decoded[i] = d * q[i];
        }
        var fromEngine = engine.Row(n).Slice(b * blockSize, blockSize);
        var x = originalTable.AsSpan((token * width) + b * blockSize, blockSize);
        for (int i = 0; i < blockSize; i++)
        {
            worstDecode = Math.Max(worstDecode, Math.Abs(decoded[i] - fromEngine[i]));
            worstError = Math.Max(worstError, Math.Abs(decoded[i] - x[i]));
            worstErrorOverScale = Math.Max(worstErrorOverScale, Math.Abs(decoded[i] - x[i]) / d);
        }

        // Quantize the original block by hand, as llama.cpp's quantize_row_q8_0_ref does.
        float max = 0;
        foreach (float v in x) max = Math.Max(max, Math.Abs(v));
        float scale = max / 127, inverse = scale != 0 ? 1 / scale : 0;
        sameBytes &= BitConverter.ToHalf(bytes, offset) == (Half)scale;
        for (int i = 0; i < blockSize; i++) sameBytes &= q[i] == (sbyte)MathF.Round(x[i] * inverse, MidpointRounding.AwayFromZero);

        if (n == 1 && b == 0)
        {
            Console.WriteLine($"token {token} '{model.TokenText(token)}', block 0: bytes {Convert.ToHexString(bytes, offset, 8)}...");
            Console.WriteLine($"  scale d = {d:G6} (bytes {Convert.ToHexString(bytes, offset, 2)}), q = {string.Join(" ", q[..8])} ...");
            Console.WriteLine($"  d*q by hand:  {string.Join(" ", decoded[..6].Select(v => v.ToString("+0.0000;-0.0000")))} ...");
            Console.WriteLine($"  engine:       {string.Join(" ", fromEngine[..6].ToArray().Select(v => v.ToString("+0.0000;-0.0000")))} ...");
            Console.WriteLine($"  F32 original: {string.Join(" ", x[..6].ToArray().Select(v => v.ToString("+0.0000;-0.0000")))} ...");
        }
    }
}
Console.WriteLine($"decoded by hand vs engine: max |difference| {worstDecode:E2} (a lookup: tolerance 0)");
Console.WriteLine($"quantizing the F32 rows by hand gives the file's bytes: {sameBytes}");
const double bound = 0.5 + 127.0 / 2048;
Console.WriteLine($"quantization error: max |d*q - x| {worstError:E2}, at most {worstErrorOverScale:F3} of a block's scale d (bound {bound:F3})");
return worstDecode == 0 && sameBytes && worstErrorOverScale <= bound ? 0 : 1;

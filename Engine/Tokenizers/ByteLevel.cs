namespace Engine.Tokenizers;

/// <summary>GPT-2's reversible byte-to-character table: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in order, so any byte string becomes printable text the BPE vocabulary is written in.</summary>
internal static class ByteLevel
{
    static readonly char[] ByteToChar = BuildTable();
    static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    static char[] BuildTable()
    {
        var table = new char[256];
        var assigned = new bool[256];
        for (int b = 0; b < 256; b++)
            if (b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF) { table[b] = (char)b; assigned[b] = true; }
        int next = 0;
        for (int b = 0; b < 256; b++)
            if (!assigned[b]) table[b] = (char)(256 + next++);
        return table;
    }

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++) dst[i] = ByteToChar[src[i]];
        });
    }

    /// <summary>The bytes a byte-level token stands for. A character outside the table (an added token written in
    /// plain Unicode) contributes its own UTF-8 bytes.</summary>
    public static byte[] Decode(string token)
    {
        var bytes = new List<byte>(token.Length);
        Span<byte> buf = stackalloc byte[4];
        foreach (var rune in token.EnumerateRunes())
        {
            if (rune.IsBmp && CharToByte.TryGetValue((char)rune.Value, out var b)) { bytes.Add(b); continue; }
            int n = rune.EncodeToUtf8(buf);
            for (int i = 0; i < n; i++) bytes.Add(buf[i]);
        }
        return bytes.ToArray();
    }
}

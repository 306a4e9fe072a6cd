using System.Globalization;
using System.Text.RegularExpressions;

namespace Engine.Cli.Store;

/// <summary>llama.cpp's names for the parts of a split GGUF: STEM-00001-of-00003.gguf ... STEM-00003-of-00003.gguf.</summary>
internal static partial class SplitGguf
{
    [GeneratedRegex("^(.*)-(\\d{5})-of-(\\d{5})\\.gguf$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex PartName();

    /// <summary>Every part's path (in order, in the same folder), when <paramref name="path"/> names one part of a split
    /// GGUF; null for a file that is not split.</summary>
    public static IReadOnlyList<string>? Parts(string path)
    {
        var match = PartName().Match(path);
        if (!match.Success) return null;
        string stem = match.Groups[1].Value, count = match.Groups[3].Value;
        return [.. Enumerable.Range(1, int.Parse(count, CultureInfo.InvariantCulture))
            .Select(i => string.Create(CultureInfo.InvariantCulture, $"{stem}-{i:00000}-of-{count}.gguf"))];
    }
}

namespace Engine.Convert.Gguf;

/// <summary>Finds llama.cpp's vocab-only GGUFs (models/ggml-vocab-*.gguf) without a --vocab option: in
/// $ENGINE_SHARED_DIR/models/ggml-vocab, else in shared/models/ggml-vocab or models/ggml-vocab beside the working
/// folder, the tool or any folder above them (the project keeps them in ../shared next to the repository).</summary>
public static class VocabLocator
{
    public static string Locate(string fileName, string? explicitPath)
    {
        if (explicitPath is not null)
        {
            if (File.Exists(explicitPath)) return Path.GetFullPath(explicitPath);
            throw new ConvertException($"vocab file not found: {explicitPath}");
        }
        var searched = new List<string>();
        foreach (var folder in CandidateFolders())
        {
            var path = Path.Combine(folder, fileName);
            if (File.Exists(path)) return path;
            searched.Add(folder);
        }
        throw new ConvertException(
            $"vocab file {fileName} not found (looked in {string.Join(", ", searched.Distinct())}); pass --vocab PATH to " +
            "llama.cpp's models/" + fileName + " or set ENGINE_SHARED_DIR to the folder holding models/ggml-vocab");
    }

    static IEnumerable<string> CandidateFolders()
    {
        if (Environment.GetEnvironmentVariable("ENGINE_SHARED_DIR") is { Length: > 0 } shared)
            yield return Path.GetFullPath(Path.Combine(shared, "models", "ggml-vocab"));
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                yield return Path.Combine(dir.FullName, "shared", "models", "ggml-vocab");
                yield return Path.Combine(dir.FullName, "models", "ggml-vocab");
            }
    }
}

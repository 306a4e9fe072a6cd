namespace Engine.Tests.Support;

/// <summary>Where the tests find the repository and the optional ../shared folder of reference data.</summary>
public static class TestPaths
{
    /// <summary>The repository root (the folder holding Engine.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The shared reference folder (models, fixtures, golden logits), or null when it is not there.
    /// ENGINE_SHARED_DIR overrides; otherwise ../shared beside the repository.</summary>
    public static string? SharedDir { get; } = FindShared();

    /// <summary>Why tests that need ../shared are skipped when it is missing.</summary>
    public const string SharedMissing = "../shared is not present (set ENGINE_SHARED_DIR to point at it)";

    /// <summary>A path inside ../shared, or null when ../shared (or that file) is missing.</summary>
    public static string? Shared(params string[] parts)
    {
        if (SharedDir is null) return null;
        var path = Path.Combine([SharedDir, .. parts]);
        return File.Exists(path) || Directory.Exists(path) ? path : null;
    }

    /// <summary>A path inside the repository (these files ship with a clone, so they must exist).</summary>
    public static string Repo(params string[] parts) => Path.Combine([RepoRoot, .. parts]);

    static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) return dir.FullName;
        throw new InvalidOperationException("cannot find Engine.sln above " + AppContext.BaseDirectory);
    }

    static string? FindShared()
    {
        var fromEnv = Environment.GetEnvironmentVariable("ENGINE_SHARED_DIR");
        if (!string.IsNullOrEmpty(fromEnv) && Directory.Exists(fromEnv)) return Path.GetFullPath(fromEnv);
        var beside = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
        return Directory.Exists(beside) ? beside : null;
    }
}

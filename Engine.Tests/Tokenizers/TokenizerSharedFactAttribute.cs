using Engine.Tests.Support;

namespace Engine.Tests.Tokenizers;

/// <summary>A fact that needs files from ../shared: skipped, with the reason shown, when ../shared or one of the named
/// files (paths relative to ../shared) is missing.</summary>
public sealed class TokenizerSharedFactAttribute : FactAttribute
{
    public TokenizerSharedFactAttribute(params string[] sharedFiles)
    {
        if (TestPaths.SharedDir is null) { Skip = TestPaths.SharedMissing; return; }
        foreach (var file in sharedFiles)
            if (TestPaths.Shared(file.Split('/')) is null) { Skip = $"../shared/{file} is not present"; return; }
    }
}

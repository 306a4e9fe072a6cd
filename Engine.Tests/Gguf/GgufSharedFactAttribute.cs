using Engine.Tests.Support;

namespace Engine.Tests.Gguf;

/// <summary>A fact that needs ../shared (models, fixtures): skipped, with the reason shown, when it is absent.</summary>
public sealed class GgufSharedFactAttribute : FactAttribute
{
    public GgufSharedFactAttribute()
    {
        if (TestPaths.SharedDir is null) Skip = TestPaths.SharedMissing;
    }
}

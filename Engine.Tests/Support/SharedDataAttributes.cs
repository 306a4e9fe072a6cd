namespace Engine.Tests.Support;

/// <summary>A theory that needs ../shared: skipped, with the reason shown, when that folder is absent.</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute() { if (TestPaths.SharedDir is null) Skip = TestPaths.SharedMissing; }
}

/// <summary>A fact that needs ../shared: skipped, with the reason shown, when that folder is absent.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute() { if (TestPaths.SharedDir is null) Skip = TestPaths.SharedMissing; }
}

namespace Engine.Tests.Support;

/// <summary>A fact that needs the ../shared reference folder. When the folder is missing the test is reported as
/// skipped with the reason (xunit 2 has no dynamic skip, so the decision is made when the attribute is built),
/// rather than passing silently.</summary>
public sealed class SharedFactAttribute : FactAttribute
{
    public SharedFactAttribute()
    {
        if (TestPaths.SharedDir is null) Skip = TestPaths.SharedMissing;
    }
}

/// <summary>The theory counterpart of <see cref="SharedFactAttribute"/>.</summary>
public sealed class SharedTheoryAttribute : TheoryAttribute
{
    public SharedTheoryAttribute()
    {
        if (TestPaths.SharedDir is null) Skip = TestPaths.SharedMissing;
    }
}

namespace Engine;

/// <summary>A grammar (<see cref="GenerateOptions.Grammar"/>) or JSON schema (<see cref="GenerateOptions.JsonSchema"/>) that
/// cannot constrain generation: a syntax error (with its line and column), an undefined rule, left recursion, or a schema
/// keyword the converter does not support (named, never silently ignored). Derives from <see cref="ArgumentException"/>
/// so a server answers it with a 400.</summary>
public sealed class GrammarException : ArgumentException
{
    /// <summary>A grammar or schema that cannot be used.</summary>
    /// <param name="message">What is wrong and where.</param>
    /// <param name="paramName">The option: "Grammar" or "JsonSchema".</param>
    public GrammarException(string message, string paramName) : base(message, paramName) { }
}

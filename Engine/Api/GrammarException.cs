namespace Engine;

/// <summary>A grammar (<see cref="GenerateOptions.Grammar"/>) or JSON schema (<see cref="GenerateOptions.JsonSchema"/>) that
/// cannot constrain generation: a syntax error (with its line and column), an undefined rule, left recursion, or a schema
/// keyword the converter does not support (named, never silently ignored); also a generation whose grammar allows no
/// further token. Derives from <see cref="ArgumentException"/> so a server answers it with a 400.</summary>
public sealed class GrammarException : ArgumentException
{
    readonly string _message;

    /// <summary>A grammar or schema that cannot be used.</summary>
    /// <param name="message">What is wrong and where.</param>
    /// <param name="paramName">The option: "Grammar", "JsonSchema" or "Tools".</param>
    public GrammarException(string message, string paramName) : base(message, paramName) => _message = message;

    internal GrammarException(string message, int line = 0, int column = 0)
        : this(line > 0 ? $"grammar line {line}, column {column}: {message}" : message, "Grammar")
    {
        Line = line;
        Column = column;
    }

    /// <summary>What is wrong, without the parameter name <see cref="ArgumentException"/> would append.</summary>
    public override string Message => _message;
    /// <summary>The 1-based line in the GBNF text where the error is, or 0 when it has no place.</summary>
    public int Line { get; }
    /// <summary>The 1-based column in that line, or 0.</summary>
    public int Column { get; }
}

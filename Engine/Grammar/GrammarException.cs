namespace Engine.Grammar;

/// <summary>A grammar or JSON schema that cannot be compiled, or a generation step that breaks the grammar.
/// <see cref="Line"/> and <see cref="Column"/> (1-based) say where in the GBNF text, when the error has a place.</summary>
internal sealed class GrammarException : Exception
{
    public GrammarException(string message, int line = 0, int column = 0)
        : base(line > 0 ? $"grammar line {line}, column {column}: {message}" : message)
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }
    public int Column { get; }
}

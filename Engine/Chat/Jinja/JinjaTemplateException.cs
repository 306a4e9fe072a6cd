namespace Engine.Chat.Jinja;

/// <summary>Every failure of a Jinja template: a syntax error (with line and column), an error the template raised
/// (raise_exception), a type or undefined-value error while rendering (with the line of the statement), a refused
/// attribute, or an exceeded limit. The integration point turns it into the public <see cref="ChatTemplateException"/>.</summary>
internal sealed class JinjaTemplateException : Exception
{
    public JinjaTemplateException(string message, bool located = false) : base(message) => Located = located;

    /// <summary>The message already says where (or, for raise_exception, must stay exactly the template's text).</summary>
    public bool Located { get; }

    public static JinjaTemplateException At(string message, int line, int column) =>
        new($"{message} (line {line}, column {column})", located: true);

    public JinjaTemplateException WithLine(int line) => new($"{Message} (line {line})", located: true);
}

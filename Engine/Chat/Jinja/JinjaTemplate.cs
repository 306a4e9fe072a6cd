namespace Engine.Chat.Jinja;

/// <summary>Bounds on one render, so a hostile template fails with a <see cref="JinjaTemplateException"/> in bounded
/// time and memory.</summary>
internal sealed record JinjaLimits
{
    public static readonly JinjaLimits Default = new();

    /// <summary>Expression evaluations, statements and loop iterations, plus one per 64 characters a string operation
    /// builds.</summary>
    public long MaxSteps { get; init; } = 5_000_000;

    /// <summary>Nested macro calls and recursive loops.</summary>
    public int MaxCallDepth { get; init; } = 200;

    /// <summary>Characters of rendered output; also the longest string or list an operation may build.</summary>
    public int MaxOutputLength { get; init; } = 8 * 1024 * 1024;
}

/// <summary>A parsed template. Parsing checks the syntax once; each <see cref="Render"/> runs with fresh limits.</summary>
internal sealed class JinjaTemplate
{
    readonly IReadOnlyList<Stmt> _body;

    JinjaTemplate(IReadOnlyList<Stmt> body) => _body = body;

    /// <exception cref="JinjaTemplateException">A syntax error, with its line and column.</exception>
    public static JinjaTemplate Parse(string source)
    {
        try { return new(JinjaParser.Parse(source)); }
        catch (InsufficientExecutionStackException) { throw new JinjaTemplateException("template nesting is too deep"); }
        catch (Exception e) when (e is not JinjaTemplateException and not OutOfMemoryException)
        {
            // Untrusted source: anything unforeseen is still reported as a template error.
            throw new JinjaTemplateException($"template syntax error: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <param name="variables">Template values (see <see cref="JinjaValues"/>): messages, tools, bos_token, ...</param>
    /// <param name="clock">The time strftime_now formats; null = the current local time.</param>
    /// <param name="limits">Bounds on the render; null = <see cref="JinjaLimits.Default"/>.</param>
    /// <exception cref="JinjaTemplateException">The template raised an error, misused a value or exceeded a limit.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? clock = null, JinjaLimits? limits = null) =>
        new JinjaInterpreter(variables, clock ?? (() => DateTime.Now), limits ?? JinjaLimits.Default).Render(_body);
}

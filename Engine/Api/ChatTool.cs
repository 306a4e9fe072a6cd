using System.Text.Json;

namespace Engine;

/// <summary>A function the model may call in a chat (<see cref="GenerateOptions.Tools"/>): its name, what it does, and a
/// JSON Schema of its parameters, as OpenAI's <c>tools[].function</c> describes one. The model's chat template shows the
/// tools to the model.</summary>
/// <param name="Name">The function's name: letters, digits, '_', '-' or '.', at most 64 characters.</param>
/// <param name="Description">What the function does, for the model; null for none.</param>
/// <param name="Parameters">A JSON Schema object of the arguments; null for a function without parameters.</param>
public sealed record ChatTool(string Name, string? Description = null, JsonElement? Parameters = null);

/// <summary>A call of a <see cref="ChatTool"/> that the model made, or made earlier in a conversation.</summary>
/// <param name="Id">The call's id; a tool's result refers to it (<see cref="ChatTurn.ToolCallId"/>).</param>
/// <param name="Name">The function called.</param>
/// <param name="Arguments">The arguments as JSON object text.</param>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>Whether the model may, must or must not call a tool (<see cref="GenerateOptions.ToolChoice"/>), as OpenAI's
/// <c>tool_choice</c>. A required call is enforced by a grammar over the model's output, so it always parses.</summary>
public sealed class ToolChoice
{
    readonly string _mode;

    ToolChoice(string mode, string? functionName)
    {
        _mode = mode;
        FunctionName = functionName;
    }

    /// <summary>The model decides (the default).</summary>
    public static ToolChoice Auto { get; } = new("auto", null);
    /// <summary>The model does not call tools; they are not shown to it.</summary>
    public static ToolChoice None { get; } = new("none", null);
    /// <summary>The model calls one or more of the tools.</summary>
    public static ToolChoice Required { get; } = new("required", null);

    /// <summary>The model calls the named function.</summary>
    /// <param name="name">One of <see cref="GenerateOptions.Tools"/>.</param>
    public static ToolChoice Function(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new("function", name);
    }

    /// <summary>The function a call is required of, or null.</summary>
    public string? FunctionName { get; }

    /// <summary>True when the reply must be tool calls.</summary>
    public bool RequiresCall => _mode is "required" or "function";

    /// <summary>"auto", "none", "required" or "function NAME".</summary>
    public override string ToString() => FunctionName is null ? _mode : $"function {FunctionName}";
}

namespace Engine.Chat;

/// <summary>One turn of a conversation. Role is usually "system", "user", "assistant" or "tool". Tool calls and the
/// tool-result fields are read only by templates that show them (the model's own Jinja template).</summary>
internal sealed record ChatMessage(string Role, string Content)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";
    public const string Tool = "tool";

    /// <summary>An assistant turn's calls.</summary>
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];
    /// <summary>A tool turn: the call it answers.</summary>
    public string? ToolCallId { get; init; }
    /// <summary>A tool turn: the function's name.</summary>
    public string? ToolName { get; init; }
}

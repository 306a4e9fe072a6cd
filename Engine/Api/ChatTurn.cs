namespace Engine;

/// <summary>One message of a conversation for <see cref="Session.ChatAsync"/>: a role ("system", "user", "assistant")
/// and its text.</summary>
/// <param name="Role">"system", "user", "assistant" or "tool", as the model's chat template knows them.</param>
/// <param name="Content">The message text. For an assistant turn, the answer only: reasoning is not shown to the model again.</param>
public sealed record ChatTurn(string Role, string Content)
{
    /// <summary>The tool calls of an assistant turn (its <see cref="Content"/> may then be empty).</summary>
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];
    /// <summary>For a "tool" turn: the id of the call whose result <see cref="Content"/> is.</summary>
    public string? ToolCallId { get; init; }
    /// <summary>For a "tool" turn: the name of the function that gave the result.</summary>
    public string? ToolName { get; init; }

    /// <summary>A system message (instructions for the whole conversation).</summary>
    public static ChatTurn System(string content) => new("system", content);
    /// <summary>A user message.</summary>
    public static ChatTurn User(string content) => new("user", content);
    /// <summary>An earlier answer of the assistant.</summary>
    public static ChatTurn Assistant(string content) => new("assistant", content);
    /// <summary>The result of a tool call, to send back to the model.</summary>
    /// <param name="toolCallId">The <see cref="ToolCall.Id"/> answered.</param>
    /// <param name="content">The result, usually JSON text.</param>
    /// <param name="toolName">The function's name, for templates that show it.</param>
    public static ChatTurn Tool(string toolCallId, string content, string? toolName = null) =>
        new("tool", content) { ToolCallId = toolCallId, ToolName = toolName };
}

/// <summary>What one generated token adds to a chat reply: reasoning (text a thinking model writes between
/// &lt;think&gt; and &lt;/think&gt;) and answer, either may be empty.</summary>
/// <param name="Reasoning">Reasoning text this token releases (tags removed).</param>
/// <param name="Answer">Answer text this token releases.</param>
/// <param name="Token">The token itself; the last update's token has the finish reason and timings.</param>
/// <param name="IsReasoning">True when the token belongs to the reasoning (its tags included), for counting reasoning
/// tokens; the text it releases can still arrive in a later update.</param>
public sealed record ChatUpdate(string Reasoning, string Answer, GeneratedToken Token, bool IsReasoning)
{
    /// <summary>Set on the last update only, when tools were offered and the reply called them: the calls, parsed from
    /// the model's output in its family's format. Their text is never part of <see cref="Answer"/>.</summary>
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];
}

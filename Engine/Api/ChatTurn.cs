namespace Engine;

/// <summary>One message of a conversation for <see cref="Session.ChatAsync"/>: a role ("system", "user", "assistant")
/// and its text.</summary>
/// <param name="Role">"system", "user", "assistant" or "tool", as the model's chat template knows them.</param>
/// <param name="Content">The message text. For an assistant turn, the answer only: reasoning is not shown to the model again.</param>
public sealed record ChatTurn(string Role, string Content)
{
    /// <summary>A system message (instructions for the whole conversation).</summary>
    public static ChatTurn System(string content) => new("system", content);
    /// <summary>A user message.</summary>
    public static ChatTurn User(string content) => new("user", content);
    /// <summary>An earlier answer of the assistant.</summary>
    public static ChatTurn Assistant(string content) => new("assistant", content);
}

/// <summary>What one generated token adds to a chat reply: reasoning (text a thinking model writes between
/// &lt;think&gt; and &lt;/think&gt;) and answer, either may be empty.</summary>
/// <param name="Reasoning">Reasoning text this token releases (tags removed).</param>
/// <param name="Answer">Answer text this token releases.</param>
/// <param name="Token">The token itself; the last update's token has the finish reason and timings.</param>
/// <param name="IsReasoning">True when the token belongs to the reasoning (its tags included), for counting reasoning
/// tokens; the text it releases can still arrive in a later update.</param>
public sealed record ChatUpdate(string Reasoning, string Answer, GeneratedToken Token, bool IsReasoning);

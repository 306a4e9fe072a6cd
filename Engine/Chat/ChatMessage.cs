namespace Engine.Chat;

/// <summary>One turn of a conversation. Role is usually "system", "user", "assistant" or "tool".</summary>
internal sealed record ChatMessage(string Role, string Content)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";
    public const string Tool = "tool";
}

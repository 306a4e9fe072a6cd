using Engine.Chat;

namespace Engine.Tests.Chat;

/// <summary>Conversations shared by the template tests.</summary>
static class Conversations
{
    public static readonly ChatMessage[] Three =
    [
        new("system", "You are helpful."),
        new("user", "Hi!"),
        new("assistant", "Hello! How can I help?"),
    ];

    /// <summary>Earlier answer with reasoning; last user turn with surrounding spaces (Llama-3 trims, ChatML not).</summary>
    public static readonly ChatMessage[] Multi =
    [
        new("system", "Be brief."),
        new("user", "2+2?"),
        new("assistant", "<think>\nadd them\n</think>\n\n4"),
        new("user", "  And 3+3? "),
    ];

    public static readonly ChatMessage[] Tools =
    [
        new("user", "Weather?"),
        new("assistant", "Checking."),
        new("tool", "sunny"),
        new("tool", "22C"),
    ];
}

using System.Text;

namespace Engine.Chat;

/// <summary>
/// ChatML as used by Qwen2 / Qwen2.5: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message and
/// <c>&lt;|im_start|&gt;assistant\n</c> as generation prompt. Tool results are grouped into one user turn of
/// <c>&lt;tool_response&gt;</c> blocks, as Qwen's templates do. A default system prompt is added only when one
/// is configured (Qwen2.5's template has one; detection copies it when the metadata template contains it).
/// </summary>
internal sealed class ChatMlTemplate : IChatTemplate
{
    /// <summary>Qwen2.5's built-in system prompt, used when the conversation has none.</summary>
    public const string Qwen25DefaultSystemPrompt = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    public ChatMlTemplate(string? defaultSystemPrompt = null) => DefaultSystemPrompt = defaultSystemPrompt;

    /// <summary>System prompt inserted when the first message is not a system message; null = none.</summary>
    public string? DefaultSystemPrompt { get; }

    public string Name => "chatml";
    public IReadOnlyList<string> StopStrings { get; } = ["<|im_end|>", "<|endoftext|>"];
    public string? BosToken => null;
    public bool GenerationPromptOpensThinking => false;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ChatRoles.ValidateAll(messages);
        var sb = new StringBuilder();
        if (DefaultSystemPrompt is not null && (messages.Count == 0 || messages[0].Role != ChatMessage.System))
            ChatMl.Turn(sb, ChatMessage.System, DefaultSystemPrompt);
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Role == ChatMessage.Tool) ChatMl.ToolResponse(sb, messages, i);
            else ChatMl.Turn(sb, m.Role, m.Content);
        }
        if (addGenerationPrompt) sb.Append("<|im_start|>assistant\n");
        return sb.ToString();
    }
}

/// <summary>ChatML pieces shared by <see cref="ChatMlTemplate"/> and <see cref="Qwen3Template"/>.</summary>
static class ChatMl
{
    public static void Turn(StringBuilder sb, string role, string content) =>
        sb.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");

    /// <summary>Consecutive tool messages share one user turn: <c>&lt;|im_start|&gt;user\n&lt;tool_response&gt;\n…\n&lt;/tool_response&gt;…&lt;|im_end|&gt;\n</c>.</summary>
    public static void ToolResponse(StringBuilder sb, IReadOnlyList<ChatMessage> messages, int i)
    {
        if (i == 0 || messages[i - 1].Role != ChatMessage.Tool) sb.Append("<|im_start|>user");
        sb.Append("\n<tool_response>\n").Append(messages[i].Content).Append("\n</tool_response>");
        if (i == messages.Count - 1 || messages[i + 1].Role != ChatMessage.Tool) sb.Append("<|im_end|>\n");
    }
}

using System.Text;

namespace Engine.Chat;

/// <summary>
/// Llama 2 chat, after Meta's HF template: an optional first system message is folded into the first user turn
/// as <c>&lt;&lt;SYS&gt;&gt;\n…\n&lt;&lt;/SYS&gt;&gt;\n\n</c>; user turns are <c>[INST] text [/INST]</c>, answers
/// <c> text &lt;/s&gt;</c>, and every user turn after the first starts with <c>&lt;s&gt;</c> (the first BOS comes from
/// the tokenizer). Turns must alternate user/assistant starting with user, as the official template enforces.
/// The prompt ending in <c>[/INST]</c> is already the generation prompt, so addGenerationPrompt adds nothing.
/// </summary>
internal sealed class Llama2Template : IChatTemplate
{
    public string Name => "llama2";
    public IReadOnlyList<string> StopStrings { get; } = ["</s>"];
    public string? BosToken => "<s>";
    public bool GenerationPromptOpensThinking => false;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ChatRoles.ValidateAll(messages);
        var start = 0;
        string? system = null;
        if (messages.Count > 0 && messages[0].Role == ChatMessage.System)
        {
            system = messages[0].Content;
            start = 1;
        }

        var sb = new StringBuilder();
        for (var i = start; i < messages.Count; i++)
        {
            var m = messages[i];
            var expected = (i - start) % 2 == 0 ? ChatMessage.User : ChatMessage.Assistant;
            if (m.Role != expected)
                throw new ChatTemplateException(
                    $"the llama2 template needs an optional system message, then user/assistant turns alternating from user; message {i} is '{m.Role}', expected '{expected}'");

            if (m.Role == ChatMessage.User)
            {
                var content = i == start && system is not null
                    ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + m.Content
                    : m.Content;
                if (i > start) sb.Append("<s>");
                sb.Append("[INST] ").Append(content.Trim()).Append(" [/INST]");
            }
            else
            {
                sb.Append(' ').Append(m.Content.Trim()).Append(" </s>");
            }
        }
        return sb.ToString();
    }
}

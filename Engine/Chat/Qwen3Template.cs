using System.Text;

namespace Engine.Chat;

/// <summary>
/// Qwen3's ChatML variant, transcribed from the Jinja template in Qwen3's tokenizer_config.json (without tools):
/// <list type="bullet">
/// <item>no default system prompt;</item>
/// <item>assistant turns before the last user query lose their &lt;think&gt; reasoning (only the answer after
/// &lt;/think&gt; is kept), turns after it keep it as <c>&lt;think&gt;\n…\n&lt;/think&gt;\n\n</c>;</item>
/// <item>tool results are grouped into one user turn of &lt;tool_response&gt; blocks;</item>
/// <item>with <see cref="EnableThinking"/> false the generation prompt carries an empty think block, which makes
/// the model answer directly (Qwen's "enable_thinking=False").</item>
/// </list>
/// </summary>
internal sealed class Qwen3Template : IChatTemplate
{
    public Qwen3Template(bool enableThinking = true) => EnableThinking = enableThinking;

    /// <summary>False appends <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> to the generation prompt.</summary>
    public bool EnableThinking { get; }

    public string Name => "qwen3";
    public IReadOnlyList<string> StopStrings { get; } = ["<|im_end|>", "<|endoftext|>"];
    public string? BosToken => null;
    public bool GenerationPromptOpensThinking => false;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ChatRoles.ValidateAll(messages);
        var sb = new StringBuilder();
        if (messages.Count > 0 && messages[0].Role == ChatMessage.System)
            ChatMl.Turn(sb, ChatMessage.System, messages[0].Content);

        var lastQuery = LastQueryIndex(messages);
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            switch (m.Role)
            {
                case ChatMessage.System when i == 0:
                    break; // already written above
                case ChatMessage.User or ChatMessage.System:
                    ChatMl.Turn(sb, m.Role, m.Content);
                    break;
                case ChatMessage.Assistant:
                    AppendAssistant(sb, m.Content, keepReasoning: i > lastQuery, isLast: i == messages.Count - 1);
                    break;
                case ChatMessage.Tool:
                    ChatMl.ToolResponse(sb, messages, i);
                    break;
                default:
                    throw ChatRoles.Unsupported(Name, i, m.Role); // Qwen's Jinja would silently drop it
            }
        }
        if (addGenerationPrompt)
        {
            sb.Append("<|im_start|>assistant\n");
            if (!EnableThinking) sb.Append("<think>\n\n</think>\n\n");
        }
        return sb.ToString();
    }

    /// <summary>Index of the last real user question (a user message that is not just a wrapped tool response);
    /// the message count minus one when there is none, as in the Jinja.</summary>
    static int LastQueryIndex(IReadOnlyList<ChatMessage> messages)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            var m = messages[i];
            if (m.Role == ChatMessage.User &&
                !(m.Content.StartsWith("<tool_response>", StringComparison.Ordinal) && m.Content.EndsWith("</tool_response>", StringComparison.Ordinal)))
                return i;
        }
        return messages.Count - 1;
    }

    static void AppendAssistant(StringBuilder sb, string raw, bool keepReasoning, bool isLast)
    {
        var content = raw;
        var reasoning = "";
        var close = raw.IndexOf("</think>", StringComparison.Ordinal);
        if (close >= 0)
        {
            // Jinja: content.split('</think>')[-1].lstrip('\n') and
            //        content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
            content = raw[(raw.LastIndexOf("</think>", StringComparison.Ordinal) + "</think>".Length)..].TrimStart('\n');
            var before = raw[..close].TrimEnd('\n');
            var open = before.LastIndexOf("<think>", StringComparison.Ordinal);
            reasoning = (open >= 0 ? before[(open + "<think>".Length)..] : before).TrimStart('\n');
        }

        sb.Append("<|im_start|>assistant\n");
        if (keepReasoning && (isLast || reasoning.Length > 0))
            sb.Append("<think>\n").Append(reasoning.Trim('\n')).Append("\n</think>\n\n").Append(content.TrimStart('\n'));
        else
            sb.Append(content);
        sb.Append("<|im_end|>\n");
    }
}

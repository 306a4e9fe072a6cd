using System.Text;

namespace Engine.Chat;

/// <summary>
/// DeepSeek-R1 (and its Qwen/Llama distills), after the official template without tools:
/// <c>{system}&lt;｜User｜&gt;question&lt;｜Assistant｜&gt;answer&lt;｜end▁of▁sentence｜&gt;…</c>, generation
/// prompt <c>&lt;｜Assistant｜&gt;&lt;think&gt;\n</c>. The bars are U+FF5C (fullwidth) and the spaces U+2581 —
/// these are the token strings, byte for byte. All system messages are joined with a blank line and placed first;
/// earlier answers lose their reasoning (everything up to the last &lt;/think&gt;). The leading
/// <c>&lt;｜begin▁of▁sentence｜&gt;</c> comes from the tokenizer (see <see cref="IChatTemplate"/>).
/// </summary>
internal sealed class DeepSeekR1Template : IChatTemplate
{
    public const string Bos = "<｜begin▁of▁sentence｜>";
    public const string UserTag = "<｜User｜>";
    public const string AssistantTag = "<｜Assistant｜>";
    public const string EndOfSentence = "<｜end▁of▁sentence｜>";

    /// <param name="openThinking">True (R1): the generation prompt ends with <c>&lt;think&gt;\n</c>. False gives
    /// the DeepSeek-V3 prompt, which ends with the assistant tag.</param>
    public DeepSeekR1Template(bool openThinking = true) => GenerationPromptOpensThinking = openThinking;

    public string Name => GenerationPromptOpensThinking ? "deepseek-r1" : "deepseek-v3";
    public IReadOnlyList<string> StopStrings { get; } = [EndOfSentence];
    public string? BosToken => Bos;
    public bool GenerationPromptOpensThinking { get; }

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ChatRoles.ValidateAll(messages);
        var sb = new StringBuilder();
        var systems = messages.Where(m => m.Role == ChatMessage.System).Select(m => m.Content);
        sb.AppendJoin("\n\n", systems);

        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            switch (m.Role)
            {
                case ChatMessage.System:
                    break;
                case ChatMessage.User:
                    sb.Append(UserTag).Append(m.Content);
                    break;
                case ChatMessage.Assistant:
                    var close = m.Content.LastIndexOf("</think>", StringComparison.Ordinal);
                    var answer = close >= 0 ? m.Content[(close + "</think>".Length)..] : m.Content;
                    sb.Append(AssistantTag).Append(answer).Append(EndOfSentence);
                    break;
                default:
                    throw ChatRoles.Unsupported(Name, i, m.Role);
            }
        }
        if (addGenerationPrompt)
        {
            sb.Append(AssistantTag);
            if (GenerationPromptOpensThinking) sb.Append("<think>\n");
        }
        return sb.ToString();
    }
}
